"""One recipient's work, as a worker does it: look at their photos, curate, plan the timeline, render.

`RecipientRenderer` is built once per worker (it loads the dataset once) and called per recipient. It knows
nothing of Ray or of the store: it writes the video to the recipient's deterministic staging path (the
renderer writes a temporary file and renames it) and returns a plain dict that the runner records.

Outcomes: ``rendered``; ``skipped`` (the data does not allow a video: too few usable photos, a photo that
broke between analysis and rendering; rerunning would not help, and the worker is not to blame); ``failed``
is an exception, which the runner counts against the worker's health and retries elsewhere.
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from framefleet.campaign.curate import curate
from framefleet.campaign.dataset import Dataset, FaceBox, load_dataset
from framefleet.campaign.render import render
from framefleet.campaign.timeline import plan_timeline
from framefleet.campaign.vision import analyse_photos
from framefleet.errors import InputError


@dataclass(frozen=True)
class RenderOptions:
    threads: int = 1  # per render; a machine runs one worker per core pair
    preset: str = "veryfast"
    crf: int = 23
    per_photo_s: float = 3.0
    music: str | None = None
    title: str = "Happy Friends Day, {name}!"
    max_photos: int = 8
    size: tuple[int, int] = (1280, 720)  # the product is 720p; tests render smaller to stay fast
    fps: int = 30

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Fault:
    """An injected fault, for drills and tests of the blocklist: extra seconds per render, a failure rate."""

    slow_s: float = 0.0
    fail_rate: float = 0.0
    seed: int = 0


def staging_path(staging: Path, campaign: str, recipient: str) -> Path:
    """The deterministic output path of (campaign, recipient), safe for any id."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", recipient)[:48]
    tag = hashlib.sha256(f"{campaign}\0{recipient}".encode()).hexdigest()[:10]
    return staging / campaign / f"{safe}-{tag}.mp4"


def first_name(name: str) -> str:
    return name.split()[0] if name.split() else name


@dataclass
class RecipientRenderer:
    dataset_dir: str
    staging_dir: str
    campaign: str
    options: RenderOptions = field(default_factory=RenderOptions)
    worker: str = ""
    fault: Fault | None = None
    dataset: Dataset = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.dataset = load_dataset(self.dataset_dir, strict=False)
        self.worker = self.worker or socket.gethostname()
        self._rng = random.Random(self.fault.seed if self.fault else 0)

    def __call__(self, recipient: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.fault is not None:
            time.sleep(self.fault.slow_s)
            if self._rng.random() < self.fault.fail_rate:
                raise RuntimeError(f"injected fault on {self.worker}")
        try:
            out = self._render(recipient)
        except InputError as e:
            out = {"status": "skipped", "reason": f"bad input: {e}"}
        out.update(recipient=recipient, worker=self.worker, seconds=time.perf_counter() - t0)
        return out

    def _render(self, recipient: str) -> dict[str, Any]:
        ds = self.dataset
        person = ds.person(recipient)
        if person is None:
            return {"status": "skipped", "reason": "not in the dataset (dropped by the loader: see its problems)"}
        photos = ds.photos_of(recipient)
        seen = analyse_photos(ds, photos, threads=self.options.threads)
        cur = curate(
            recipient, ds, faces=seen.faces, hashes=seen.hashes, unreadable=seen.unreadable,
            max_photos=self.options.max_photos,
        )  # fmt: skip
        if cur.skipped is not None:
            return {"status": "skipped", "reason": cur.skipped}
        by_id = {p.id: p for p in photos}
        shots: list[tuple[str, tuple[int, int], tuple[FaceBox, ...], str]] = []
        friends: list[str] = []
        for chosen in cur.photos:
            p = by_id[chosen.id]
            faces = seen.faces.get(p.id, p.faces or ())
            shots.append((str(ds.photo_path(p)), seen.sizes[p.id], tuple(faces), p.id))
            for t in p.tagged:
                other = ds.person(t)
                if t != recipient and other is not None and first_name(other.name) not in friends:
                    friends.append(first_name(other.name))
        shown = friends[:6] + (["and friends"] if len(friends) > 6 else [])
        tl = plan_timeline(
            shots,
            [self.options.title.format(name=first_name(person.name))],
            ["With", ", ".join(shown)],
            per_photo_s=self.options.per_photo_s,
            music=self.options.music,
            size=self.options.size,
            fps=self.options.fps,
        )
        dst = staging_path(Path(self.staging_dir), self.campaign, recipient)
        stats = render(tl, dst, threads=self.options.threads, crf=self.options.crf, preset=self.options.preset)
        media = {
            "container": "mp4", "video_codec": "h264", "audio_codec": "aac", "width": tl.width, "height": tl.height,
            "fps": float(tl.fps), "frame_count": stats.frames, "duration": stats.seconds,
            "bitrate": int(stats.bytes * 8 / stats.seconds),
            "metrics": {"photos": [c.id for c in cur.photos], "render_cpu_s": round(stats.cpu_s, 3)},
        }  # fmt: skip
        return {"status": "rendered", "path": str(dst), "media": media, "planned_s": tl.seconds, "cpu_s": stats.cpu_s}
