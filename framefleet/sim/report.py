"""What a simulation reports: totals, per-region figures and time series over simulated time, and plots.

The event simulation fills the series with counts; the fluid model fills the same arrays with expected
values, so both are summarised (and compared) by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framefleet.sim.scenario import Scenario


@dataclass
class Series:
    """Per time bucket (rows) and region (columns). `flows[b, s, t]`: successes from source s served in t."""

    n: int
    bucket_s: float
    requests: np.ndarray
    attempts: np.ndarray
    succeeded: np.ndarray
    failed: np.ndarray
    flows: np.ndarray
    busy_sum: np.ndarray
    samples: np.ndarray

    @classmethod
    def empty(cls, scenario: Scenario, names: list[str]) -> Series:
        n = max(1, int(np.ceil(scenario.duration_s / scenario.bucket_s)))
        r = len(names)

        def z(*shape: int) -> np.ndarray:
            return np.zeros(shape, dtype=np.float64)

        return cls(n, scenario.bucket_s, z(n, r), z(n, r), z(n, r), z(n, r), z(n, r, r), z(n, r), z(n))


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 5) if b > 0 else None


@dataclass
class SimReport:
    scenario: str
    mode: str
    regions: list[str]
    gpus: dict[str, int]
    series: Series
    totals: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        sc: Scenario,
        names: list[str],
        series: Series,
        latencies_s: np.ndarray,
        *,
        attempts: float,
        reasons: dict[str, int],
        wall_s: float,
        mode: str,
        table_versions: int,
        busy_on_arrival: int | None = None,
    ) -> SimReport:
        s = series
        requests = float(s.requests.sum())
        succeeded = float(s.succeeded.sum())
        failed = float(s.failed.sum())
        cross = float(s.flows.sum() - np.trace(s.flows.sum(axis=0)))
        samples = np.maximum(s.samples, 1)[:, None]
        gpus = np.array([max(1, r.gpus) for r in sc.regions], dtype=np.float64)
        util = s.busy_sum / samples / gpus  # per bucket and region, against provisioned GPUs
        per_region: dict[str, Any] = {}
        for i, name in enumerate(names):
            req = float(s.requests[:, i].sum())
            per_region[name] = {
                "gpus": sc.regions[i].gpus,
                "requests": round(req),
                "success_rate": _ratio(float(s.succeeded[:, i].sum()), req),
                "worst_bucket_success": _worst(s.succeeded[:, i], s.requests[:, i]),
                "utilization": round(float(s.busy_sum[:, i].sum() / max(1.0, s.samples.sum()) / gpus[i]), 4),
                "peak_utilization": round(float(util[:, i].max()), 4),
                "served_here": round(float(s.flows[:, :, i].sum())),
            }
        lat = (
            {f"p{q}": round(float(np.percentile(latencies_s, q)) * 1000, 1) for q in (50, 95, 99)}
            if latencies_s.size
            else {"p50": None, "p95": None, "p99": None}
        )
        totals = {
            "scenario": sc.name,
            "mode": mode,
            "policy": sc.policy,
            "seed": sc.seed,
            "simulated_s": sc.duration_s,
            "requests": round(requests),
            "succeeded": round(succeeded),
            "failed": round(failed),
            "success_rate": _ratio(succeeded, requests),
            "worst_bucket_success": _worst(s.succeeded.sum(axis=1), s.requests.sum(axis=1)),
            "attempts_per_request": _ratio(attempts, requests),
            "latency_ms": lat,
            "cross_region_share": _ratio(cross, succeeded),
            "gpus": int(sum(r.gpus for r in sc.regions)),
            "utilization": round(float(s.busy_sum.sum() / max(1.0, s.samples.sum()) / gpus.sum()), 4),
            "routing_table_versions": table_versions,
            "failure_reasons": {k: round(v) for k, v in sorted(reasons.items())},
            "busy_on_arrival": busy_on_arrival,  # routed to a region that was full on arrival (None: fluid)
            "wall_s": round(wall_s, 2),
            "requests_per_wall_s": round(requests / wall_s) if wall_s > 0 else None,
            "per_region": per_region,
        }
        return cls(sc.name, mode, names, {r.name: r.gpus for r in sc.regions}, series, totals)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.totals)

    def timeline(self) -> dict[str, Any]:
        """Per-bucket series for the plots."""
        s = self.series
        t_h = (np.arange(s.n) * s.bucket_s) / 3600.0
        req = s.requests.sum(axis=1)
        ok = s.succeeded.sum(axis=1)
        flows = s.flows.sum(axis=(1, 2))
        cross = flows - np.einsum("bii->b", s.flows)
        samples = np.maximum(s.samples, 1)[:, None]
        gpus = np.array([max(1, g) for g in self.gpus.values()], dtype=np.float64)
        return {
            "t_h": t_h,
            "success_rate": np.divide(ok, req, out=np.full_like(ok, np.nan), where=req > 0),
            "utilization": s.busy_sum / samples / gpus,
            "cross_region_share": np.divide(cross, flows, out=np.full_like(cross, np.nan), where=flows > 0),
        }


def _worst(ok: np.ndarray, req: np.ndarray, min_requests: float = 20.0) -> float | None:
    """The lowest success rate of any time bucket with enough requests to mean something."""
    mask = req >= min_requests
    if not mask.any():
        return None
    return round(float((ok[mask] / req[mask]).min()), 5)


def plot_reports(reports: list[SimReport], path: str | Path, title: str = "") -> None:
    """Success rate, load per region and cross-region share over simulated time, one column per report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(reports)
    fig, axes = plt.subplots(3, cols, figsize=(6 * cols, 9), sharex="col", squeeze=False)
    for c, rep in enumerate(reports):
        tl = rep.timeline()
        ax = axes[0][c]
        ax.plot(tl["t_h"], tl["success_rate"], color="tab:green")
        ax.set_ylim(min(0.5, float(np.nanmin(tl["success_rate"])) - 0.02) if rep.series.n else 0, 1.01)
        ax.set_ylabel("success rate")
        t = rep.totals
        ax.set_title(
            f"{rep.scenario} ({rep.mode}, {t['policy']}): success {t['success_rate']}, "
            f"{t['attempts_per_request']} attempts/req",
            fontsize=9,
        )
        ax = axes[1][c]
        for i, name in enumerate(rep.regions):
            ax.plot(tl["t_h"], tl["utilization"][:, i], label=name, lw=1)
        ax.set_ylabel("GPU utilization")
        ax.set_ylim(0, 1.05)
        if len(rep.regions) <= 12:
            ax.legend(fontsize=7, ncol=2)
        ax = axes[2][c]
        ax.plot(tl["t_h"], tl["cross_region_share"], color="tab:purple")
        ax.set_ylabel("served cross-region")
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("simulated hours")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)  # never a half-written plot
