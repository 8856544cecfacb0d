"""Crowd subjective studies of enhanced and generated video: study design, the rating API and page, and the
statistics (MOS, rater screening, rater model, Bradley–Terry, metric correlations). See docs/evaluate.md.

Nothing is imported here, so that the pure modules stay light."""
