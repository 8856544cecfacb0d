"""PNG plots of a study's results (matplotlib, Agg backend): the only module of the statistics that writes files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framefleet.evaluate.results import StudyResults


def plot_results(results: StudyResults, folder: Path) -> list[Path]:
    """mos.png, preferences.png, metric-<name>.png per metric, gain.png (when a gain was computed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []

    def save(fig: object, name: str) -> None:
        path = folder / name
        fig.savefig(path, dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
        plt.close(fig)  # type: ignore[arg-type]
        out.append(path)

    vs = results.variants
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(vs), 3.6))
    mos = np.array([v.mos for v in vs])
    err = np.array([[v.mos - v.ci_low for v in vs], [v.ci_high - v.mos for v in vs]])
    ax.errorbar(range(len(vs)), mos, yerr=np.nan_to_num(err), fmt="o", capsize=5)
    ax.set_xticks(range(len(vs)), [v.variant for v in vs])
    ax.set_ylim(1, 5)
    ax.set_ylabel("MOS (95 % bootstrap CI)")
    ax.set_title(f"MOS per variant ({len(results.kept_raters)} raters kept)")
    save(fig, "mos.png")

    p = results.preferences
    share = np.array([[np.nan if x is None else x for x in row] for row in p.share], dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 + 0.9 * len(p.variants), 1.2 + 0.9 * len(p.variants)))
    im = ax.imshow(share, vmin=0, vmax=1, cmap="RdBu")
    for i, j in np.ndindex(share.shape):
        if p.count[i][j]:
            ax.text(j, i, f"{share[i, j]:.2f}\nn={p.count[i][j]}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(p.variants)), p.variants, rotation=30)
    ax.set_yticks(range(len(p.variants)), p.variants)
    ax.set_title("share preferring row over column")
    fig.colorbar(im, ax=ax)
    save(fig, "preferences.png")

    for metric in sorted({k for s in results.stimuli for k in s.metrics}):
        pts = [(s.metrics[metric], s.mos, s.variant) for s in results.stimuli if metric in s.metrics]
        fig, ax = plt.subplots(figsize=(4.5, 3.6))
        for name in sorted({v for *_, v in pts}):
            ax.scatter([x for x, _, v in pts if v == name], [y for _, y, v in pts if v == name], label=name, s=18)
        corr = next((c for c in results.correlations if c.metric == metric and c.target == "mos"), None)
        if corr and corr.plcc is not None:
            ax.set_title(f"{metric}: PLCC {corr.plcc:.2f}, SROCC {corr.srocc:.2f}, n={corr.n}")
        ax.set_xlabel(metric)
        ax.set_ylabel("MOS")
        ax.legend(fontsize=7)
        save(fig, f"metric-{metric}.png")

    if results.gains:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for k, g in enumerate(results.gains):
            bs = [b for b in g.buckets if b.gain is not None]
            x = np.array([(b.low + b.high) / 2 for b in bs]) + 1.5 * k
            y = np.array([b.gain for b in bs], dtype=float)
            lo = np.array([np.nan if b.ci_low is None else b.ci_low for b in bs], dtype=float)
            hi = np.array([np.nan if b.ci_high is None else b.ci_high for b in bs], dtype=float)
            e = np.nan_to_num(np.stack([y - lo, hi - y]))
            ax.errorbar(x, y, yerr=e, fmt="o-", capsize=4, label=f"{g.variant} − {g.baseline}")
        gate = results.gains[0].gate_threshold
        if gate is not None:
            ax.axvline(gate, ls="--", c="grey", label=f"gate min_quality {gate:g}")
        ax.axhline(0, c="k", lw=0.8)
        ax.set_xlabel("input quality (estimated VMAF), bucket centre")
        ax.set_ylabel("MOS gain (95 % CI)")
        ax.legend(fontsize=7)
        save(fig, "gain.png")
    return out
