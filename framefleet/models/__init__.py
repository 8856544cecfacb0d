"""Models: one protocol per task, one file per model, a registry from names to factories.

- `upscale`: `Upscaler.__call__(frames[N,H,W,3] uint8) -> frames[N,sH,sW,3] uint8`
- `interpolate`: `Interpolator.midpoint(a, b) -> frame` (frame-rate up-conversion)
"""
