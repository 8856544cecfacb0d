"""Train the live student (framefleet.models.live.net.LiveNet) to reproduce the prompt-named looks of
framefleet.models.live.looks, one causal step at a time, on real footage (framefleet.models.live.data).

Each step draws a batch of runs of three consecutive frames (t−2, t−1, t); every item draws its own look
(a training paraphrase of it → MiniLM embedding), or a blend of two looks (`--blend-prob`: blended
embedding, blended targets), or no prompt (`--identity-prob`: the zero embedding, target = the frame).
The student makes two steps:
    out1 = net(frame[t−1], prev0, cond)   prev0 = the teacher's output at t−2, corrupted (history aug)
    out2 = net(frame[t],   prev1, cond)   prev1 = the teacher's output at t−1, corrupted, or, with
                                          probability --rollout-prob per item (always after a
                                          cold start or a prompt switch: data.py), the student's
                                          own out1 (detached)
    loss = L1(out1, T[t−1]) + L1(out2, T[t]) + --temporal-weight · mean(M · |out2 − W(out1)|)
           [+ --distill-weight · (L1(out1, wide1) + L1(out2, wide2))   with --distill-from]
The temporal term is the flow-warped consistency of Lai et al. 2018 (models/live/stability.py): W warps the
previous output along the inputs' backward flow t → t−1, M masks what the warp does not explain. It does
not copy the teachers' frame-to-frame change, which for the sketches is mostly amplified sensor noise.
Distillation (`--distill-from RUN`): a wide net trained first is run (no grad) on exactly the inputs the
student saw, and the student also matches its outputs; `--prune` starts the student from the wide net's
most important channels (models/live/prune.py) rather than from scratch.
A fixed set of --probe-batches batches is scored at the start and the end of a run ("probe" in live.json).
`--no-history-aug` feeds the teachers' previous outputs uncorrupted (the exposure-bias baseline).
AdamW, linear warm-up then cosine decay to 10% at --steps. A checkpoint (weights, optimiser, step) every
--save-every steps and at the end; `--resume` continues from it (the data stream is reseeded with the step).

Outputs in --out: live.safetensors (float32 weights, the config in its metadata), live.json (the
config, the run's settings and losses, the canonical prompts of the looks with their MiniLM embeddings),
live.onnx (unless --no-onnx), checkpoint.safetensors.

    .venv/bin/python training/train_live.py --steps 20 --size 64 --batch 2 --threads 1 --out /tmp/live-smoke
The shipped model (2026-12-07, second training, on this 2-core CPU; LOOKS="pencil-sketch soft-skin
crisp-detail cartoon warm-sunset cool-moonlight thermal night-vision"):
    .venv/bin/python training/train_live.py --width 48 --mid-width 96 --size 128 --batch 8 --steps 5500 \
        --minutes 44 --threads 2 --looks $LOOKS --out training/runs/live-wide           # the wide net, ~40 min
    .venv/bin/python training/train_live.py --width 32 --mid-width 64 --size 128 --batch 8 --steps 2500 \
        --minutes 30 --threads 2 --looks $LOOKS --distill-from training/runs/live-wide --prune \
        --out training/runs/live                                  # pruned + distilled: shipped
    cp training/runs/live/live.{onnx,json,safetensors} framefleet/models/live/weights/
The history-augmentation ablation (benchmarks/live_benchmarks.py --ha-ablation): two students of the
shipped width from a fresh start, no distillation, side by side with one thread each:
    .venv/bin/python training/train_live.py --width 32 --mid-width 64 --size 128 --batch 8 --steps 2500 \
        --minutes 60 --threads 1 --looks $LOOKS --out training/runs/live-ha
    (the same with --no-history-aug --rollout-prob 0 --out training/runs/live-noha)
Cost on this machine: ~2.3 steps/s for the wide net with two threads.
(the same command with --resume continues a run that stopped.)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from framefleet.models.live import data, looks
from framefleet.models.live.net import LiveNet, export_onnx, param_count, weight_bytes
from framefleet.models.live.prune import prune


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("training/runs/live"), help="run folder")
    ap.add_argument("--steps", type=int, default=6000, help="total optimiser steps (the schedule's length)")
    ap.add_argument("--minutes", type=float, default=None, help="stop cleanly after this long")
    ap.add_argument("--size", type=int, default=192, help="crop side (a multiple of 8)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=48, help="channels at 1/4 resolution (48 ships; 96: wide)")
    ap.add_argument("--mid-width", type=int, default=None, help="channels at 1/8 (default 2·width)")
    ap.add_argument("--distill-from", type=Path, default=None, help="a wide run folder (live.safetensors)")
    ap.add_argument("--distill-weight", type=float, default=1.0)
    ap.add_argument("--prune", action="store_true", help="start from the pruned --distill-from net")
    ap.add_argument("--prev-input", action="store_true", help="the net also reads the previous input frame")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--temporal-weight", type=float, default=1.0)
    ap.add_argument("--history-aug", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--rollout-prob", type=float, default=0.25, help="per item: prev at t = the net's own output at t−1"
    )
    ap.add_argument("--blend-prob", type=float, default=0.15)
    ap.add_argument("--identity-prob", type=float, default=0.05)
    ap.add_argument("--looks", nargs="+", default=None, choices=list(looks.LOOKS), help="default: all")
    ap.add_argument("--max-frames", type=int, default=None, help="decode at most this many frames per clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50, help="steps per logged mean loss")
    ap.add_argument("--probe-batches", type=int, default=4, help="fixed batches scored at start and end")
    ap.add_argument(
        "--resume", action="store_true", help="continue from --out/checkpoint.safetensors (fresh if there is none)"
    )
    ap.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True, help="export live.onnx")
    args = ap.parse_args(argv)
    if args.prune and args.distill_from is None:
        ap.error("--prune needs --distill-from (the wide net to prune)")
    if args.size % 8:
        ap.error(f"--size must be a multiple of 8, got {args.size}")
    return args


def lr_at(step: int, args: argparse.Namespace) -> float:
    warm = max(1, min(200, args.steps // 10))
    if step < warm:
        return float(args.lr * (step + 1) / warm)
    t = min(1.0, (step - warm) / max(1, args.steps - warm))
    return float(args.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * t))))


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample img [B, C, H, W] at x + flow(x) (flow [B, 2, H, W] in pixels), bilinear, border replicated."""
    _, _, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1  # [B, H, W] in [-1, 1]
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], dim=-1)  # [B, H, W, 2]
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def losses(
    net: LiveNet, batch: data.Batch, args: argparse.Namespace, rollout: bool, wide: LiveNet | None = None
) -> dict[str, torch.Tensor]:
    """The two causal steps of a run and their losses (module docstring)."""
    f, tgt = batch.frames, batch.targets  # [B, 3, 3, S, S]
    out1 = net(f[:, 1], batch.prev0, batch.cond)  # [B, 3, S, S]
    own = batch.fresh | (torch.rand(len(batch.fresh)) < args.rollout_prob if rollout else torch.zeros_like(batch.fresh))
    prev1 = torch.where(own[:, None, None, None], out1.detach(), batch.prev1)  # [B, 3, S, S]: own output or history
    out2 = net(f[:, 2], prev1, batch.cond)  # [B, 3, S, S]
    l1 = F.l1_loss(out1, tgt[:, 1]) + F.l1_loss(out2, tgt[:, 2])
    temporal = (batch.mask * (out2 - warp(out1, batch.flow)).abs()).mean()  # flow-warped consistency
    parts = {"l1": l1, "temporal": temporal}
    loss = l1 + args.temporal_weight * temporal
    if wide is not None:
        with torch.no_grad():  # the wide net on the very inputs the student saw
            w1 = wide(f[:, 1], batch.prev0, batch.cond)
            w2 = wide(f[:, 2], prev1, batch.cond)
        parts["distill"] = F.l1_loss(out1, w1) + F.l1_loss(out2, w2)
        loss = loss + args.distill_weight * parts["distill"]
    return {"loss": loss, **parts}


@torch.no_grad()
def probe_loss(net: LiveNet, probe: list[data.Batch], args: argparse.Namespace) -> float:
    """Mean L1 to the teachers plus the weighted temporal term on fixed batches (same footage, looks and
    corruptions every time; no rollout; no distillation term, so that wide and narrow runs compare)."""
    was_training = net.training
    net.eval()
    value = float(np.mean([losses(net, b, args, rollout=False)["loss"].item() for b in probe]))
    net.train(was_training)
    return value


def save_checkpoint(path: Path, net: LiveNet, opt: torch.optim.Optimizer, step: int, args: argparse.Namespace) -> None:
    """Weights, AdamW moments and step counts as one safetensors file; the param groups in its metadata."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in net.state_dict().items()}
    state = opt.state_dict()
    for pid, st in state["state"].items():
        for k, v in st.items():
            tensors[f"optim.{pid}.{k}"] = torch.as_tensor(v).contiguous()
    meta = {
        "step": str(step),
        "config": json.dumps(net.config),
        "param_groups": json.dumps(state["param_groups"]),
        "args": json.dumps({k: str(v) for k, v in vars(args).items()}),
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path, net: LiveNet, opt: torch.optim.Optimizer) -> int:
    """Restore `net` and `opt` from `save_checkpoint`'s file; returns the step to continue from."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(path))
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["step"])


def load_net(folder: Path) -> LiveNet:
    """The LiveNet of a finished run folder (live.safetensors with its config), in eval mode."""
    from safetensors import safe_open

    path = folder / "live.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        config = json.loads(fh.metadata()["config"])
    net = LiveNet(**{**config, "blocks": tuple(config["blocks"])})
    net.load_state_dict(load_file(str(path)))
    return net.eval()


def look_embeddings(embeds: dict[str, np.ndarray], names: list[str]) -> dict[str, Any]:
    """Per look: the canonical prompt, its embedding, and the phrasings trained on (the runtime matches a user's
    prompt against these: live/engine.py)."""
    return {
        n: {
            "prompt": looks.LOOKS[n].prompt,
            "embedding": embeds[looks.LOOKS[n].prompt].tolist(),
            "phrasings": list(looks.LOOKS[n].paraphrases),
        }
        for n in names
    }


def export(net: LiveNet, args: argparse.Namespace, train_info: dict[str, Any], embeds: Any) -> None:
    """live.safetensors, live.json (and live.onnx) in --out."""
    names = args.looks or list(looks.LOOKS)
    weights = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    save_file(weights, str(args.out / "live.safetensors"), metadata={"config": json.dumps(net.config)})
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    info = {
        "config": net.config,
        "parameters": param_count(net),
        "train": {**train_info, "settings": settings},
        "looks": look_embeddings(embeds, names),
    }
    (args.out / "live.json").write_text(json.dumps(info, indent=1))
    if args.onnx:
        export_onnx(net, args.out / "live.onnx", 64)


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.looks or list(looks.LOOKS)
    embeds = data.embed_looks(data.look_texts(names))
    torch.manual_seed(args.seed)
    wide = load_net(args.distill_from) if args.distill_from is not None else None
    if wide is not None and args.prune:
        net = prune(wide, args.width, args.mid_width or 2 * args.width)
    else:
        net = LiveNet(width=args.width, mid_width=args.mid_width, prev_input=args.prev_input)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    ckpt = args.out / "checkpoint.safetensors"
    start = load_checkpoint(ckpt, net, opt) if args.resume and ckpt.is_file() else 0
    sampler = data.PairSampler(
        embeds,
        seed=args.seed * 1_000_003 + start,
        names=names,
        history_aug=args.history_aug,
        blend_prob=args.blend_prob,
        identity_prob=args.identity_prob,
        max_frames=args.max_frames,
    )
    torch.manual_seed(args.seed + 7 * start)  # the per-item rollout draws
    probe = [sampler.fixed_batch(args.batch, args.size, seed=10_000 + i) for i in range(args.probe_batches)]
    probe_start = probe_loss(net, probe, args)
    print(f"LiveNet width {args.width}: {param_count(net):,} parameters ({weight_bytes(net) / 1e6:.2f} MB fp32)")
    log: list[dict[str, float]] = []
    window: list[list[float]] = []
    t_end = time.monotonic() + 60 * args.minutes if args.minutes else math.inf
    done = start
    net.train()
    bar = tqdm(range(start, args.steps), initial=start, total=args.steps, dynamic_ncols=True)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args)
        batch = sampler.batch(args.batch, args.size)
        parts = losses(net, batch, args, rollout=True, wide=wide)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        done = step + 1
        keys = [k for k in ("loss", "l1", "temporal", "distill") if k in parts]
        window.append([parts[k].item() for k in keys])
        if len(window) == args.log_every or done == args.steps:
            mean = np.mean(window, axis=0)
            log.append({"step": done, **{k: float(v) for k, v in zip(keys, mean, strict=True)}})
            bar.set_postfix({k: f"{v:.4f}" for k, v in zip(keys, mean, strict=True)})
            window = []
        if done % args.save_every == 0:
            save_checkpoint(ckpt, net, opt, done, args)
        if time.monotonic() > t_end:
            break
    bar.close()
    probe_end = probe_loss(net, probe, args)
    print(f"probe loss {probe_start:.4f} at step {start} -> {probe_end:.4f} at step {done}")
    save_checkpoint(ckpt, net, opt, done, args)
    result = {"step": done, "start": start, "probe": [probe_start, probe_end], "losses": log}
    export(net, args, result, embeds)
    return {**result, "out": str(args.out)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    # Denormals slow CPU convolutions (~25% per step here). Flushing them is process-wide FPU state, so it is
    # undone afterwards: a caller in the same process (the tests) must not inherit it.
    torch.set_flush_denormal(True)
    try:
        result = train(parse_args(argv))
    finally:
        torch.set_flush_denormal(False)
    last = result["losses"][-1] if result["losses"] else {}
    print(json.dumps({"step": result["step"], "out": result["out"], **last}))
    return result


if __name__ == "__main__":
    main()
