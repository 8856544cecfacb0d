"""The campaign capacity plan: measure what one video costs with real renders, then size the cluster.

    framefleet campaign plan --recipients 3e8 --deadline-hours 36 --json

`measure` renders `samples` recipients of a dataset (a small synthetic one by default) in a child process,
one at a time, with the production settings, and records per video: CPU-seconds (curation and rendering),
the worker's peak resident memory, output bytes, and store writes. `plan` (pure) turns those into machines,
wall time, storage and egress for `recipients`, stating every assumption it makes.
"""

from __future__ import annotations

import math
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from framefleet.campaign.work import RecipientRenderer, RenderOptions
from framefleet.errors import InputError

WRITES_PER_VIDEO = 3  # the video file (written once, renamed), its variant row, its recipient row


@dataclass(frozen=True)
class VideoCost:
    samples: int
    rendered: int
    cpu_s: float  # median per rendered video
    cpu_s_skip: float  # median per skipped recipient (curation only)
    skip_share: float
    peak_rss_mb: float
    bytes: float  # median output size
    seconds: float  # median video length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _measure_in_child(dataset_dir: str, samples: int, options: RenderOptions) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="framefleet-plan-") as staging:
        worker = RecipientRenderer(dataset_dir, staging, "plan", options, "plan")
        rendered: list[tuple[float, int, float]] = []
        skipped: list[float] = []
        for person in worker.dataset.people:
            if len(rendered) >= samples:
                break
            c0 = _cpu()
            out = worker(person.id)
            cpu = _cpu() - c0
            if out["status"] == "rendered":
                rendered.append((cpu, Path(out["path"]).stat().st_size, float(out["media"]["duration"])))
            else:
                skipped.append(cpu)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
        return {"rendered": rendered, "skipped": skipped, "peak_rss_mb": peak_kb / 1024}


def measure(dataset_dir: str | Path | None, samples: int = 4, options: RenderOptions | None = None) -> VideoCost:
    """Render `samples` real videos in a fresh process (so its peak memory is the renderer's own)."""
    opts = options or RenderOptions()
    with tempfile.TemporaryDirectory(prefix="framefleet-plan-data-") as tmp:
        if dataset_dir is None:
            from framefleet.campaign.synth import synthesize

            dataset_dir = Path(tmp) / "data"
            synthesize(Path(dataset_dir), max(40, samples * 6), seed=7)
        with ProcessPoolExecutor(max_workers=1) as pool:
            got = pool.submit(_measure_in_child, str(dataset_dir), samples, opts).result()
    rendered, skipped = got["rendered"], got["skipped"]
    if not rendered:
        raise InputError(
            f"none of the {len(skipped)} sampled recipients could be rendered; give --dataset with usable photos"
        )
    return VideoCost(
        samples=len(rendered) + len(skipped),
        rendered=len(rendered),
        cpu_s=statistics.median(c for c, _, _ in rendered),
        cpu_s_skip=statistics.median(skipped) if skipped else 0.0,
        skip_share=len(skipped) / (len(rendered) + len(skipped)),
        peak_rss_mb=got["peak_rss_mb"],
        bytes=statistics.median(b for _, b, _ in rendered),
        seconds=statistics.median(s for _, _, s in rendered),
    )


@dataclass(frozen=True)
class Assumptions:
    cores_per_machine: int = 32
    memory_gb_per_machine: float = 64.0
    utilization: float = 0.75  # of each core; the rest absorbs stragglers, retries and blocklisted machines
    skip_share: float | None = None  # None: as measured on the sample
    views_per_video: float = 1.5  # each video is watched about once and a half (shares, rewatches)
    retry_overhead: float = 0.03  # share of renders done twice (failures, hung renders, blocklisted workers)


def plan(recipients: float, deadline_hours: float, cost: VideoCost, a: Assumptions | None = None) -> dict[str, Any]:
    """Machines, wall time, storage, egress and write rate for `recipients` videos within `deadline_hours`."""
    a = a or Assumptions()
    if recipients <= 0 or deadline_hours <= 0:
        raise ValueError("recipients and deadline hours must be > 0")
    skip = cost.skip_share if a.skip_share is None else a.skip_share
    videos = recipients * (1 - skip)
    cpu_total = (videos * cost.cpu_s + recipients * skip * cost.cpu_s_skip) * (1 + a.retry_overhead)
    per_machine_s = deadline_hours * 3600 * a.cores_per_machine * a.utilization
    machines = math.ceil(cpu_total / per_machine_s)
    workers_per_machine = a.cores_per_machine  # one single-threaded render per core
    mem_need = workers_per_machine * cost.peak_rss_mb / 1024
    if mem_need > a.memory_gb_per_machine:  # memory-bound: fewer workers per machine, more machines
        workers_per_machine = max(1, int(a.memory_gb_per_machine * 1024 // cost.peak_rss_mb))
        machines = math.ceil(cpu_total / (deadline_hours * 3600 * workers_per_machine * a.utilization))
    storage = videos * cost.bytes
    return {
        "recipients": recipients,
        "videos": round(videos),
        "deadline_hours": deadline_hours,
        "machines": machines,
        "cores": machines * a.cores_per_machine,
        "workers_per_machine": workers_per_machine,
        "cpu_hours": round(cpu_total / 3600, 1),
        "wall_hours": round(cpu_total / (machines * workers_per_machine * a.utilization) / 3600, 2),
        "storage_tb": round(storage / 1e12, 2),
        "egress_tb": round(storage * a.views_per_video / 1e12, 2),
        "store_writes_per_s": round(recipients * WRITES_PER_VIDEO / (deadline_hours * 3600), 1),
        "renders_per_s": round(videos / (deadline_hours * 3600), 1),
        "per_video": cost.to_dict(),
        "assumptions": asdict(a) | {"skip_share": skip, "writes_per_video": WRITES_PER_VIDEO},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
