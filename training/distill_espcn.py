"""Distil ESPCN v4, a small luma-residual net, from v3, the RGB-residual net train_espcn.py trained.

Why: v3 (3→64→32→12, 27 k multiply-adds per low-res pixel) met the quality goal but ran 540p → 1080p at
only 3.5–5.8 fps on 2 cores, depending on the day's host. PSNR-Y, SSIM and VMAF look at luma only, so
v4 reads Y and gives δY, added to R, G and B alike (chroma stays bicubic's), and is narrower.

How: v4 starts as v3 seen through grey, which is exact for a grey input: conv1 sums v3's RGB taps, conv3
mixes v3's 12 outputs to the 4 luma sub-pixels with 0.299 / 0.587 / 0.114. Then structured pruning keeps
the `--f1` conv1 channels that conv2 weighs most and the `--f2` conv2 channels that conv3 weighs most, and
the student learns to match v3's luma residual (MSE) on the same degraded photographs v3 trained on.
Trained from a random start instead, the same net (even at v3's widths) lost carphone's +0.6 dB.

The shipped weights (VERSION 4), ~6 min on one thread:
    git show 60790e0:framefleet/models/upscale/weights/espcn-x2.safetensors > /tmp/espcn-v3.safetensors
    .venv/bin/python training/distill_espcn.py --teacher /tmp/espcn-v3.safetensors --f1 32 --f2 16
    -> framefleet/models/upscale/weights/espcn-x2.safetensors, espcn-x2.onnx
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
from safetensors.torch import load_file
from tqdm import tqdm
from train_espcn import HELD_OUT, SCALE, crop_pair, degrade, make_pairs, photographs, prune, save_weights

from framefleet.models.upscale.espcn import add_luma_residual, build_espcn, luma_planar, weights_path, widths
from framefleet.quality.fullref import psnr

LUMA = torch.tensor([0.299, 0.587, 0.114])  # BT.601, as OpenCV's RGB2GRAY and FFmpeg's default RGB → YUV
R2 = SCALE * SCALE


def grey_view(teacher: dict[str, torch.Tensor], f1: int, f2: int) -> dict[str, torch.Tensor]:
    """The luma net that computes what the RGB `teacher` does to a grey picture, pruned to f1 × f2."""
    w3 = teacher["conv3.weight"].view(3, R2, *teacher["conv3.weight"].shape[1:])  # [RGB, r², f2, 3, 3]
    b3 = teacher["conv3.bias"].view(3, R2)  # PixelShuffle's channel order: c·r² + sub-pixel
    s = {
        "conv1.weight": teacher["conv1.weight"].sum(1, keepdim=True),  # [f1, 1, 5, 5]: R = G = B = Y
        "conv1.bias": teacher["conv1.bias"],
        "conv2.weight": teacher["conv2.weight"],
        "conv2.bias": teacher["conv2.bias"],
        "conv3.weight": (w3 * LUMA.view(3, 1, 1, 1, 1)).sum(0),  # [r², f2, 3, 3]: δY = Σ coef · δRGB
        "conv3.bias": (b3 * LUMA.view(3, 1)).sum(0),
    }
    return prune(prune(s, "conv1", f1), "conv2", f2)


def teacher_targets(
    teacher: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(low-res RGB, the teacher's luma residual [2h, 2w]) for every degraded photograph."""
    out = []
    with torch.no_grad():
        for lr, _ in tqdm(pairs, desc="teacher"):
            x = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255)  # [1, 3, h, w]
            out.append((lr, (teacher(x) * LUMA.view(1, 3, 1, 1)).sum(1)[0].numpy()))  # [2h, 2w]
    return out


def batch(data: list[tuple[np.ndarray, np.ndarray]], n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ds = [], []
    for _ in range(n):
        a, d = crop_pair(*random.choice(data), size)  # [size, size, 3], [2size, 2size]
        xs.append(a.transpose(2, 0, 1))
        ds.append(d[None].copy())
    x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255)  # [n, 3, size, size]
    y = torch.round((x * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True) * 255) / 255  # [n, 1, size, size]: 8-bit Y
    return y, torch.from_numpy(np.stack(ds))  # [n, 1, 2size, 2size]


def validate(model: torch.nn.Module, hr: np.ndarray) -> tuple[float, float]:
    """PSNR of the student and of bicubic on the held-out photograph, run the way the upscaler runs."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        lr = degrade(hr, 23, cv2.INTER_LANCZOS4, Path(d))
    with torch.no_grad():
        delta = model(torch.from_numpy(luma_planar(lr[None]))).numpy()  # [1, 1, 2h, 2w]
    bic = cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC)
    return psnr(hr, add_luma_residual(lr[None], delta, SCALE)[0]), psnr(hr, bic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, required=True, help="the RGB ESPCN (v3) safetensors")
    ap.add_argument("--f1", type=int, default=32, help="conv1 channels kept")
    ap.add_argument("--f2", type=int, default=16, help="conv2 channels kept")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=weights_path(SCALE), help="where the safetensors go (ONNX beside)")
    args = ap.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    state = load_file(str(args.teacher))
    f1, f2, channels = widths(state)
    if channels != 3 or args.f1 > f1 or args.f2 > f2:
        ap.error(
            f"--teacher must be an RGB ESPCN at least {args.f1}×{args.f2} wide; "
            f"{args.teacher} has {channels} channels and is {f1}×{f2}"
        )
    teacher = build_espcn(SCALE, f1, f2, channels=3)
    teacher.load_state_dict(state)
    teacher.eval()
    images = photographs(graphics=True)
    data = teacher_targets(teacher, make_pairs(images))
    student = build_espcn(SCALE, args.f1, args.f2, channels=1)
    student.load_state_dict(grey_view(state, args.f1, args.f2))
    opt = torch.optim.Adam(student.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    t0 = time.time()
    bar = tqdm(range(args.steps), desc="distilling", mininterval=10)
    for step in bar:
        y, target = batch(data, args.batch, args.patch)
        # ×100: the residuals are ~1/255, and Adam's ε would otherwise damp the smallest updates
        loss = 100 * F.mse_loss(student(y), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == args.steps - 1:
            ours, bic = validate(student, images[HELD_OUT])
            bar.set_postfix(loss=f"{loss.item():.5f}", val_psnr=f"{ours:.2f}", bicubic=f"{bic:.2f}")
    student.eval()
    ours, bic = validate(student, images[HELD_OUT])
    meta = {
        "recipe": "distilled (training/distill_espcn.py)",
        "teacher": args.teacher.name,
        "widths": json.dumps(widths(student.state_dict())),
        "steps": str(args.steps),
        "lr": str(args.lr),
        "seed": str(args.seed),
        "train_images": json.dumps(sorted(n for n in images if n != HELD_OUT)),
        "held_out": HELD_OUT,
        "held_out_psnr": f"{ours:.3f}",
        "held_out_psnr_bicubic": f"{bic:.3f}",
        "seconds": f"{time.time() - t0:.0f}",
    }
    save_weights(student, args.out, meta)


if __name__ == "__main__":
    main()
