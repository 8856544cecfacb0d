"""A study's results as one report: gathered from the store (`build_report`), as JSON (`Report.to_dict`) and as one
self-contained HTML page (`render_html`; plots inline as SVG from `evaluate/plots.py`, no script, no external
asset). The same page is served at `/studies/{id}/results` and written by `framefleet study results ID --html F`.

    report = build_report(store, study_id)       # NotFound for an unknown study; no votes: report.results is None
    write_html(render_html(report), Path("results.html"))

Every piece of text that comes from the store or from the analysis passes through `html.escape`.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framefleet._fs import scratch_file
from framefleet.errors import InputError
from framefleet.evaluate.results import GainResult, StudyResults

DEFAULT_N_BOOT = 1000


@dataclass(frozen=True)
class Report:
    study: str
    name: str
    created_at: str | None
    n_votes: int
    expected_votes: int
    results: StudyResults | None  # None: nothing to analyse yet (see `message`)
    message: str | None = None

    @property
    def ready(self) -> bool:
        return self.results is not None

    def to_dict(self) -> dict[str, Any]:
        head = {"study": self.study, "name": self.name, "created_at": self.created_at, "ready": self.ready,
                "expected_votes": self.expected_votes}  # fmt: skip
        if self.results is None:
            return {**head, "n_votes": self.n_votes, "message": self.message}
        return {**head, **self.results.to_dict()}


def build_report(store: Any, study_id: str, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> Report:
    """Gather the study's votes and analyse them (baseline `original`, the gate's current `min_quality`).

    Raises NotFound for an unknown study. A study without votes, or whose votes cannot be analysed yet (say,
    every rater was screened out), gives a report without results and with the reason in `message`."""
    from framefleet.evaluate.stats import analyse
    from framefleet.evaluate.study import ORIGINAL, analysis_inputs
    from framefleet.quality.gate import GateThresholds
    from framefleet.store.studies import StudyStore

    ss = StudyStore(store)
    study = ss.get(study_id)
    expected = sum(len(r.items) for r in ss.raters(study_id))
    created = study.created_at.isoformat() if study.created_at else None
    votes, stimuli = analysis_inputs(store, study_id)
    if not votes:
        message = "no votes yet: share the study's rating links (`framefleet study serve`)"
        return Report(study_id, study.name, created, 0, expected, None, message)
    try:
        results = analyse(votes, stimuli, baseline=ORIGINAL, gate_threshold=GateThresholds().min_quality,
                          n_boot=n_boot, seed=seed)  # fmt: skip
    except InputError as e:
        return Report(study_id, study.name, created, len(votes), expected, None, f"cannot analyse yet: {e.message}")
    return Report(study_id, study.name, created, len(votes), expected, results)


def write_html(text: str, dst: Path) -> Path:
    """Write the page atomically: a temporary file beside `dst`, then renamed over it."""
    if not dst.resolve().parent.is_dir():
        raise InputError(f"--html {dst}: its folder does not exist")
    if dst.is_dir():
        raise InputError(f"--html {dst}: is a folder; give a file name such as results.html")
    with scratch_file(dst.resolve().parent, ".html") as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, dst)
    return dst


# --- the page -----------------------------------------------------------------------------------------------------


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def num(x: float | int | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def interval(lo: float | None, hi: float | None, digits: int = 2) -> str:
    return "–" if lo is None or hi is None else f"{lo:.{digits}f} … {hi:.{digits}f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False, cls: str = "") -> str:
    """An HTML table; cells are escaped unless `raw` (then the caller escaped them)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def figure(svgs: dict[str, str], name: str, caption: str) -> str:
    if name not in svgs:
        return ""
    return f'<figure class="plot">{svgs[name]}<figcaption>{esc(caption)}</figcaption></figure>'


def render_html(report: Report, svgs: dict[str, str] | None = None) -> str:
    """The whole page. `svgs` (from `plots.svg_plots`) is computed here when not given."""
    title = f"Study results — {report.name}"
    if report.results is None:
        body = _header(report) + f'<p class="empty" id="empty">{esc(report.message or "no results")}</p>'
        return _page(title, body)
    res = report.results
    if svgs is None:
        from framefleet.evaluate.plots import svg_plots

        svgs = svg_plots(res)
    body = "".join(
        (_header(report), _mos(res, svgs), _preferences(res, svgs), _bradley_terry(res, svgs), _metrics(res, svgs),
         _gains(res, svgs), _screening(res), _stimuli(res))
    )  # fmt: skip
    return _page(title, body)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main><h1>{esc(title)}</h1>{body}</main></body></html>\n"
    )


def _header(report: Report) -> str:
    facts = [("study", report.study), ("created", report.created_at or "–"),
             ("answers", f"{report.n_votes} of {report.expected_votes}")]  # fmt: skip
    res = report.results
    if res is not None:
        boot = f"{res.settings.get('n_boot')} resamples, seed {res.settings.get('seed')}"
        facts += [("raters", f"{len(res.kept_raters)} kept, {len(res.rejected_raters)} screened out"),
                  ("baseline", res.baseline), ("pair answers", str(res.n_pair_votes)), ("bootstrap", boot)]  # fmt: skip
    items = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)
    nav = ""
    if res is not None:
        links = [("mos", "MOS"), ("preferences", "Preferences"), ("bradley-terry", "Bradley–Terry"),
                 ("metrics", "Metrics"), ("gain", "Gain and gate"), ("screening", "Screening")]  # fmt: skip
        nav = "<nav>" + " · ".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in links) + "</nav>"
    return f'<dl class="facts">{items}</dl>{nav}'


def _mos(res: StudyResults, svgs: dict[str, str]) -> str:
    rows = [
        (v.variant, num(v.mos), interval(v.ci_low, v.ci_high), str(v.n_scores), str(v.n_assets), num(v.mle),
         ", ".join(f"{k} {r:.0%}" for k, r in v.artifact_rates.items()) or "–")
        for v in res.variants
    ]  # fmt: skip
    return section(
        "mos", "Mean opinion score per variant",
        figure(svgs, "mos", "MOS (1–5) of the kept raters' pair scores; bars: 95 % bootstrap interval over raters "
               "and assets."),
        table(("variant", "MOS", "95 % CI", "scores", "assets", "MLE quality", "artifacts flagged"), rows),
    )  # fmt: skip


def _preferences(res: StudyResults, svgs: dict[str, str]) -> str:
    p = res.preferences
    rows = []
    for i, row in enumerate(p.variants):
        cells = [f"<b>{esc(row)}</b>"]
        for j in range(len(p.variants)):
            share = p.share[i][j]
            cells.append("–" if i == j or not p.count[i][j] else
                         f"{p.wins[i][j]} wins, {p.ties[i][j]} same of {p.count[i][j]}"
                         f"<br><b>{esc(num(share))}</b>")  # fmt: skip
        rows.append(cells)
    return section(
        "preferences", "Preference matrix",
        figure(svgs, "preferences", "Share of answers preferring the row over the column (\"same\" counts ½)."),
        table(("row over column", *p.variants), rows, raw=True, cls="matrix"),
    )  # fmt: skip


def _bradley_terry(res: StudyResults, svgs: dict[str, str]) -> str:
    rows = [(v.variant, num(v.bradley_terry), interval(v.bt_ci_low, v.bt_ci_high), str(v.n_shown))
            for v in sorted(res.variants, key=lambda v: -(v.bradley_terry or float("-inf")))]  # fmt: skip
    note = str(res.settings.get("bradley_terry", ""))
    return section(
        "bradley-terry", "Bradley–Terry scores",
        figure(svgs, "bradley-terry", "Log-strength from the preferences (mean 0); bars: 95 % percentile "
               "bootstrap over raters."),
        table(("variant", "log-strength", "95 % CI", "times shown"), rows), f'<p class="note">{esc(note)}</p>',
    )  # fmt: skip


def _metrics(res: StudyResults, svgs: dict[str, str]) -> str:
    rows = [(c.metric, c.target.upper(), str(c.n), num(c.plcc, 3), num(c.srocc, 3), num(c.krocc, 3))
            for c in res.correlations]  # fmt: skip
    plots = "".join(figure(svgs, n, f"{n.removeprefix('metric-')} against MOS per stimulus")
                    for n in sorted(svgs) if n.startswith("metric-"))  # fmt: skip
    if not rows:
        return section("metrics", "Metrics against MOS", '<p class="empty">no stimulus carries a metric</p>')
    return section("metrics", "Metrics against MOS", f'<div class="plots">{plots}</div>',
                   table(("metric", "against", "stimuli", "PLCC", "SROCC", "KROCC"), rows))  # fmt: skip


def _gain(g: GainResult) -> str:
    rows = [(f"{b.low:g}–{b.high:g}", str(b.n_assets), num(b.gain), interval(b.ci_low, b.ci_high))
            for b in g.buckets]  # fmt: skip
    suggested = "none" if g.suggested_threshold is None else f"{g.suggested_threshold:g}"
    current = "not given" if g.gate_threshold is None else f"{g.gate_threshold:g}"
    return (
        f'<h3>{esc(g.variant)} − {esc(g.baseline)}</h3><dl class="facts gate"><div><dt>suggested gate threshold</dt>'
        f"<dd>{esc(suggested)}</dd></div><div><dt>current gate threshold (min_quality)</dt><dd>{esc(current)}</dd>"
        f'</div></dl><p class="verdict">{esc(g.verdict)}</p>'
        + table(("input quality", "assets", "MOS gain", "95 % CI"), rows)
    )


def _gains(res: StudyResults, svgs: dict[str, str]) -> str:
    if not res.gains:
        return section("gain", "Gain by input quality",
                       f'<p class="empty">no variant to compare with the baseline {esc(res.baseline)}</p>')  # fmt: skip
    return section(
        "gain", "Gain by input quality and the gate",
        figure(svgs, "gain", "MOS gain over the baseline per input-quality bucket (estimated VMAF of the original); "
               "dashed: the gate's current threshold, dotted: the threshold the data suggests."),
        *(_gain(g) for g in res.gains),
    )  # fmt: skip


def _screening(res: StudyResults) -> str:
    rows = []
    for r in res.raters:
        reasons = "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in r.reasons) + "</ul>" if r.reasons else "–"
        rows.append((esc(r.rater), "kept" if r.kept else '<b class="rejected">screened out</b>', reasons,
                     str(r.n_votes), f"{r.gold_failures} of {r.n_gold}", esc(num(r.score_sd)),
                     esc(num(r.outlier_z))))  # fmt: skip
    model = ""
    if res.rater_model:
        mrows = [(m.rater, num(m.bias), num(m.bias_std), num(m.inconsistency), num(m.inconsistency_std))
                 for m in res.rater_model]  # fmt: skip
        model = ("<details><summary>Rater model (MLE bias and inconsistency of the kept raters)</summary>"
                 + table(("rater", "bias", "± sd", "inconsistency", "± sd"), mrows) + "</details>")  # fmt: skip
    return section(
        "screening", "Rater screening",
        f"<p>{len(res.kept_raters)} kept, {len(res.rejected_raters)} screened out (gold and trap answers, "
        "near-zero variance, outliers).</p>",
        table(("rater", "verdict", "reasons", "answers", "gold/trap wrong", "score sd", "outlier z"), rows, raw=True),
        model,
    )  # fmt: skip


def _stimuli(res: StudyResults) -> str:
    rows = [(s.asset, s.variant, num(s.mos), interval(s.ci_low, s.ci_high), str(s.n_scores),
             num(s.input_quality, 1), ", ".join(f"{k} {v:.3g}" for k, v in sorted(s.metrics.items())) or "–")
            for s in res.stimuli]  # fmt: skip
    return section("stimuli", "Per stimulus", "<details><summary>every asset × variant</summary>"
                   + table(("asset", "variant", "MOS", "95 % CI", "scores", "input quality", "metrics"), rows)
                   + "</details>")  # fmt: skip


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}
main{max-width:1100px;margin:0 auto;padding:1.5rem}
h1{font-size:1.5rem;margin:.2rem 0 1rem}h2{font-size:1.2rem;margin:0 0 .8rem}h3{font-size:1rem;margin:1rem 0 .4rem}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:1rem 1.2rem;margin:1rem 0}
dl.facts{display:flex;flex-wrap:wrap;gap:.4rem 1.6rem;margin:0 0 .6rem}dl.facts dt{font-size:.78rem;color:#5b636d}
dl.facts dd{margin:0;font-weight:600}nav a{color:#0b5cad}
table{border-collapse:collapse;margin:.6rem 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e6e9ed;padding:.3rem .6rem;text-align:left;vertical-align:top}
thead th{font-size:.8rem;color:#5b636d}td ul{margin:0;padding-left:1rem}
.matrix td{text-align:center}.rejected{color:#b3261e}.empty{font-size:1.1rem;color:#5b636d}
.verdict{font-weight:600}.note,figcaption{font-size:.8rem;color:#5b636d}
figure.plot{margin:.4rem 0;display:inline-block;max-width:100%}figure.plot svg{max-width:100%;height:auto}
.plots{display:flex;flex-wrap:wrap;gap:1rem}
"""

__all__ = ["Report", "build_report", "render_html", "write_html"]
