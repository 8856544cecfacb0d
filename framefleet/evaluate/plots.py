"""Plots of a study's results (matplotlib's object API, no pyplot: no global state, safe in a server thread).

One set of figures, two outputs: `plot_results` writes them as PNG files (`study results --plot DIR`), `svg_plots`
returns them as inline SVG text for the results page (`evaluate/report.py`): no XML prolog, no metadata; text
stays text (escaped by matplotlib) and every id is prefixed with the figure's name, so several SVGs can share one
HTML document.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from framefleet.evaluate.results import GainResult, StudyResults

DPI = 110


def figures(results: StudyResults) -> Iterator[tuple[str, Any]]:
    """(name, matplotlib Figure) of each plot: mos, bradley-terry, preferences, metric-<name> per metric, gain."""
    yield "mos", _mos(results)
    if any(v.bradley_terry is not None for v in results.variants):
        yield "bradley-terry", _bradley_terry(results)
    yield "preferences", _preferences(results)
    for metric in sorted({k for s in results.stimuli for k in s.metrics}):
        yield f"metric-{metric}", _metric(results, metric)
    if results.gains:
        yield "gain", _gain(results.gains)


def plot_results(results: StudyResults, folder: Path) -> list[Path]:
    """mos.png, bradley-terry.png, preferences.png, metric-<name>.png per metric, gain.png (when computed)."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for name, fig in figures(results):
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        out.append(path)
    return out


def svg_plots(results: StudyResults) -> dict[str, str]:
    """name -> an `<svg ...>...</svg>` element to inline in HTML (no XML prolog, no DOCTYPE)."""
    import matplotlib

    out: dict[str, str] = {}
    for name, fig in figures(results):
        buf = io.StringIO()
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
            fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        text = buf.getvalue()
        text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg") :], count=1, flags=re.S)
        out[name] = _salted_ids(text, name)
    return out


def _salted_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and each reference to one) so two figures' ids never collide in one page."""
    for mark in (' id="', "url(#", 'href="#'):
        svg = svg.replace(mark, f"{mark}{prefix}-")
    return svg


def _bars(err: Any) -> Any:
    """Error bar lengths: NaN (no interval) and rounding below 0 (an interval that collapsed onto the point, or a
    percentile interval that does not hold it) drawn as no bar."""
    return np.clip(np.nan_to_num(err), 0.0, None)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _mos(results: StudyResults) -> Any:
    vs = results.variants
    fig, ax = _figure(1.2 + 1.1 * len(vs), 3.6)
    mos = np.array([v.mos for v in vs])
    err = np.array([[v.mos - v.ci_low for v in vs], [v.ci_high - v.mos for v in vs]])
    ax.errorbar(range(len(vs)), mos, yerr=_bars(err), fmt="o", capsize=5)
    ax.set_xticks(range(len(vs)), [v.variant for v in vs])
    ax.set_ylim(1, 5)
    ax.set_ylabel("MOS (95 % bootstrap CI)")
    ax.set_title(f"MOS per variant ({len(results.kept_raters)} raters kept)")
    return fig


def _bradley_terry(results: StudyResults) -> Any:
    vs = [v for v in results.variants if v.bradley_terry is not None]
    fig, ax = _figure(1.2 + 1.1 * len(vs), 3.6)
    y = np.array([v.bradley_terry for v in vs], dtype=float)
    lo = np.array([np.nan if v.bt_ci_low is None else v.bt_ci_low for v in vs], dtype=float)
    hi = np.array([np.nan if v.bt_ci_high is None else v.bt_ci_high for v in vs], dtype=float)
    ax.errorbar(range(len(vs)), y, yerr=_bars(np.stack([y - lo, hi - y])), fmt="s", capsize=5, c="C2")
    ax.axhline(0, c="k", lw=0.8)
    ax.set_xticks(range(len(vs)), [v.variant for v in vs])
    ax.set_ylabel("log-strength (95 % bootstrap CI)")
    ax.set_title("Bradley–Terry from preferences")
    return fig


def _preferences(results: StudyResults) -> Any:
    p = results.preferences
    share = np.array([[np.nan if x is None else x for x in row] for row in p.share], dtype=float).reshape(
        len(p.variants), len(p.variants)
    )
    fig, ax = _figure(1.5 + 0.9 * len(p.variants), 1.2 + 0.9 * len(p.variants))
    im = ax.imshow(share, vmin=0, vmax=1, cmap="RdBu")
    for i, j in np.ndindex(share.shape):
        if p.count[i][j]:
            ax.text(j, i, f"{share[i, j]:.2f}\nn={p.count[i][j]}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(p.variants)), p.variants, rotation=30)
    ax.set_yticks(range(len(p.variants)), p.variants)
    ax.set_title("share preferring row over column")
    fig.colorbar(im, ax=ax)
    return fig


def _metric(results: StudyResults, metric: str) -> Any:
    pts = [(s.metrics[metric], s.mos, s.variant) for s in results.stimuli if metric in s.metrics]
    fig, ax = _figure(4.5, 3.6)
    for name in sorted({v for *_, v in pts}):
        ax.scatter([x for x, _, v in pts if v == name], [y for _, y, v in pts if v == name], label=name, s=18)
    corr = next((c for c in results.correlations if c.metric == metric and c.target == "mos"), None)
    if corr and corr.plcc is not None:
        ax.set_title(f"{metric}: PLCC {corr.plcc:.2f}, SROCC {corr.srocc:.2f}, n={corr.n}")
    else:
        ax.set_title(f"{metric}: too few stimuli for a correlation")
    ax.set_xlabel(metric)
    ax.set_ylabel("MOS")
    ax.legend(fontsize=7)
    return fig


def _gain(gains: list[GainResult]) -> Any:
    fig, ax = _figure(5.5, 3.6)
    for k, g in enumerate(gains):
        bs = [b for b in g.buckets if b.gain is not None]
        x = np.array([(b.low + b.high) / 2 for b in bs]) + 1.5 * k
        y = np.array([b.gain for b in bs], dtype=float)
        lo = np.array([np.nan if b.ci_low is None else b.ci_low for b in bs], dtype=float)
        hi = np.array([np.nan if b.ci_high is None else b.ci_high for b in bs], dtype=float)
        e = _bars(np.stack([y - lo, hi - y]).reshape(2, len(bs)))
        ax.errorbar(x, y, yerr=e, fmt="o-", capsize=4, label=f"{g.variant} − {g.baseline}")
    gate = gains[0].gate_threshold
    if gate is not None:
        ax.axvline(gate, ls="--", c="grey", label=f"gate min_quality {gate:g}")
    for k, g in enumerate(gains):
        if g.suggested_threshold is not None:
            ax.axvline(g.suggested_threshold, ls=":", c=f"C{k}", label=f"suggested for {g.variant}: "
                       f"{g.suggested_threshold:g}")  # fmt: skip
    ax.axhline(0, c="k", lw=0.8)
    ax.set_xlabel("input quality (estimated VMAF), bucket centre")
    ax.set_ylabel("MOS gain (95 % CI)")
    ax.legend(fontsize=7)
    return fig


__all__ = ["figures", "plot_results", "svg_plots"]
