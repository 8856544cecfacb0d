"""Full-reference quality: PSNR, SSIM and VMAF of a distorted video against its reference.

All three come from one run of libvmaf (Netflix's library) inside the static FFmpeg program that the
`imageio-ffmpeg` package ships: PyAV's FFmpeg is built without libvmaf, so the program runs as a
subprocess. A distorted video at another resolution is scaled (bicubic) to the reference's size first,
as the VMAF authors recommend; both are compared in yuv420p, frame by frame from their first frame.

    framefleet quality ref.mp4 dist.mp4 --json      # {"psnr": 38.2, "ssim": 0.962, "vmaf": 91.4, ...}

PSNR is of the luma plane (psnr_y) and SSIM is libvmaf's float_ssim on luma: what papers report.
"""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from framefleet.errors import InputError, MediaError
from framefleet.media.probe import check_file, probe

VMAF_MODEL = "vmaf_v0.6.1"  # built into libvmaf; for 1080p viewing at 3 picture heights


@dataclass(frozen=True)
class QualityScores:
    psnr: float  # dB, luma, mean over frames
    ssim: float  # 0..1, luma, mean over frames
    vmaf: float  # 0..100, mean over frames (vmaf_v0.6.1)
    vmaf_min: float  # the worst frame: a short glitch hides in the mean
    frames: int
    model: str = VMAF_MODEL

    def to_dict(self) -> dict[str, float | int | str]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@functools.cache
def ffmpeg_exe() -> str:
    """The static FFmpeg program shipped by imageio-ffmpeg (it has libvmaf; Debian's does not)."""
    try:
        import imageio_ffmpeg
    except ImportError:  # pragma: no cover - it is a declared dependency
        raise MediaError("VMAF needs the imageio-ffmpeg package: pip install imageio-ffmpeg") from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape (any layout); inf when they are identical."""
    if reference.shape != distorted.shape:
        raise InputError(f"PSNR needs equal shapes, got {reference.shape} and {distorted.shape}")
    mse = float(np.mean((reference.astype(np.float64) - distorted.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def full_reference(
    reference: str | Path,
    distorted: str | Path,
    *,
    subsample: int = 1,
    threads: int = 2,
    max_frames: int | None = None,
) -> QualityScores:
    """PSNR, SSIM and VMAF of `distorted` against `reference` (files FFmpeg can read).

    Both must hold the same number of frames (same content, same timing); `subsample` scores every n-th
    frame (libvmaf's n_subsample) and `max_frames` only the first frames, to trade accuracy for speed.
    """
    ref, dist = check_file(reference), check_file(distorted)
    ri, di = probe(ref, verify=False), probe(dist, verify=False)
    if ri.video is None or di.video is None:
        bad = ref if ri.video is None else dist
        raise InputError(f"{bad}: has no video stream to measure")
    if max_frames is None and ri.video.frames and di.video.frames and ri.video.frames != di.video.frames:
        raise InputError(
            f"{ref.name} has {ri.video.frames} frames but {dist.name} has {di.video.frames}; full-reference metrics "
            "compare frame by frame, so pass a distorted video made from this reference with the same frame rate"
        )
    if subsample < 1:
        raise InputError(f"subsample must be ≥ 1, got {subsample}")
    w, h = ri.video.width, ri.video.height
    with tempfile.TemporaryDirectory(prefix="framefleet-vmaf-") as tmp:
        log = Path(tmp) / "vmaf.json"
        log_arg = str(log).replace(":", r"\:")  # ':' separates filter options
        # Timestamps are renumbered from 0 on both sides: a reference with an edit list or a start offset
        # would otherwise be paired with the wrong distorted frame.
        graph = (
            f"[0:v]scale={w}:{h}:flags=bicubic,format=yuv420p,setpts=N/TB[d];"
            f"[1:v]format=yuv420p,setpts=N/TB[r];"
            f"[d][r]libvmaf=model=version={VMAF_MODEL}:n_threads={threads}:n_subsample={subsample}"
            f":feature=name=psnr|name=float_ssim:log_fmt=json:log_path={log_arg}:shortest=1"
        )
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(dist), "-i", str(ref)]
        if max_frames is not None:
            cmd += ["-frames:v", str(max_frames)]
        cmd += ["-lavfi", graph, "-f", "null", "-"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not log.exists():
            reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            raise MediaError(f"VMAF of {dist.name} against {ref.name} failed: {reason}")
        report = json.loads(log.read_text())
    pooled = report["pooled_metrics"]
    frames = len(report.get("frames", []))
    if frames == 0:
        raise InputError(f"no frames of {dist.name} could be paired with {ref.name}")
    return QualityScores(
        psnr=float(pooled["psnr_y"]["mean"]),
        ssim=float(pooled["float_ssim"]["mean"]),
        vmaf=float(pooled["vmaf"]["mean"]),
        vmaf_min=float(pooled["vmaf"]["min"]),
        frames=frames,
    )
