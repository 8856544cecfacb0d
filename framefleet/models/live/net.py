"""The live student: a causal per-frame network that turns a camera stream into a prompt-named look.

    from framefleet.models.live.net import LiveNet, step
    net = LiveNet().eval()                         # 1.04 M parameters, 4.2 MB in float32
    state = None
    for frame in frames:                           # [H, W, 3] uint8 RGB
        out, state = step(net, state, frame, cond) # cond: [384] MiniLM embedding of the prompt

Shape: a small U-Net. The current frame and the previous *output* (and, with `prev_input=True`, the
previous input frame) are stacked (6 or 9 channels) and folded 4×4 into channels (PixelUnshuffle, the
space-to-depth stem of ESPCN, Shi et al. 2016, run backwards) so that every convolution runs at a quarter of
the resolution or less: 384×384 → 96×96 (`width` channels) → 48×48 (2·`width`). Residual blocks are
conditioned by FiLM (Perez et al. 2018): a small MLP maps the 384-d prompt embedding to a per-channel
scale and shift for every block. PixelShuffle brings 48 channels back to a full-resolution RGB residual;
the output is frame + residual, clamped to [0, 1]. The last convolution of every block and of the head
starts at zero, as does the FiLM output layer (γ = β = 0), so an untrained net is the identity (out = frame).

Why the previous output: the teachers (`looks.py`) have no memory and flicker with sensor noise; a student
that sees what it showed last time can keep it where the input did not really change. Training corrupts
that input (`data.HistoryAug`) so that the net does not trust it blindly (exposure bias).

H and W must be multiples of 8 (`MULTIPLE`); `step` and `OnnxLive.stream` pad with reflection and crop.

ONNX: `export_onnx` writes a graph with dynamic batch, height and width; inputs `frame`, `prev_out`
(and `prev_in`), `cond`; output `out`. `OnnxLive` runs it with ONNX Runtime on float32 NCHW arrays in
[0, 1] (the state stays in float: no rounding in the feedback loop); `stream` takes and gives uint8 HWC.
Latency at 256² and 384², one thread:
    .venv/bin/python -m framefleet.models.live.net
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

COND_DIM = 384  # MiniLM sentence embedding
MULTIPLE = 8  # 4× stem, then one 2× down-sampling
MAX_WEIGHT_BYTES = 10_000_000  # the shipped float32 weights


class FiLMResBlock(nn.Module):
    """x + conv(FiLM(relu(conv(x)))): FiLM after the first activation's convolution, scale as 1 + γ."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        assert self.conv2.bias is not None
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))  # [N, C, h, w]: Conv + Relu fuse in ONNX Runtime
        h = h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]  # gamma, beta: [N, C]
        out: torch.Tensor = x + self.conv2(h)
        return out


class LiveNet(nn.Module):
    """The student. `width` channels at 1/4 resolution, `mid_width` (default 2·`width`) at 1/8; `blocks` =
    (residual blocks at 1/4 before the down-sampling, at 1/8, at 1/4 after the up-sampling)."""

    def __init__(
        self,
        width: int = 48,
        cond_dim: int = COND_DIM,
        blocks: tuple[int, int, int] = (1, 4, 1),
        film_hidden: int = 128,
        prev_input: bool = False,
        mid_width: int | None = None,
    ) -> None:
        super().__init__()
        mid_width = mid_width or 2 * width
        self.config: dict[str, Any] = {
            "width": width,
            "mid_width": mid_width,
            "cond_dim": cond_dim,
            "blocks": list(blocks),
            "film_hidden": film_hidden,
            "prev_input": prev_input,
        }
        self.prev_input, self.cond_dim = prev_input, cond_dim
        w, w2 = width, mid_width
        in_ch = (9 if prev_input else 6) * 16
        self.stem = nn.Sequential(nn.PixelUnshuffle(4), nn.Conv2d(in_ch, w, 3, padding=1))
        self.enc = nn.ModuleList(FiLMResBlock(w) for _ in range(blocks[0]))
        self.down = nn.Conv2d(w, w2, 3, stride=2, padding=1)
        self.mid = nn.ModuleList(FiLMResBlock(w2) for _ in range(blocks[1]))
        self.up = nn.Sequential(nn.Conv2d(w2, 4 * w, 1), nn.PixelShuffle(2))
        self.dec = nn.ModuleList(FiLMResBlock(w) for _ in range(blocks[2]))
        self.head = nn.Sequential(nn.Conv2d(w, 3 * 16, 3, padding=1), nn.PixelShuffle(4))
        self.film_sizes = [w] * blocks[0] + [w2] * blocks[1] + [w] * blocks[2]
        self.film = nn.Sequential(
            nn.Linear(cond_dim, film_hidden), nn.SiLU(), nn.Linear(film_hidden, 2 * sum(self.film_sizes))
        )
        head = self.head[0]
        assert isinstance(head, nn.Conv2d) and head.bias is not None
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        last = self.film[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(
        self, frame: torch.Tensor, prev_out: torch.Tensor, cond: torch.Tensor, prev_in: torch.Tensor | None = None
    ) -> torch.Tensor:
        """frame, prev_out (, prev_in): [N, 3, H, W] in [0, 1], H and W multiples of 8; cond: [N, 384]."""
        parts = [frame, prev_out] + ([prev_in if prev_in is not None else frame] if self.prev_input else [])
        x = torch.cat(parts, dim=1)  # [N, 6 or 9, H, W]
        film = self.film(cond)  # [N, 2 * sum(film_sizes)]
        gammas, betas = film.chunk(2, dim=1)  # [N, sum(film_sizes)] each
        gs = list(torch.split(gammas, self.film_sizes, dim=1))
        bs = list(torch.split(betas, self.film_sizes, dim=1))
        h = self.stem(x)  # [N, w, H/4, W/4]
        for blk in self.enc:
            h = blk(h, gs.pop(0), bs.pop(0))
        skip = h
        h = self.down(F.relu(h))  # [N, 2w, H/8, W/8]
        for blk in self.mid:
            h = blk(h, gs.pop(0), bs.pop(0))
        h = skip + self.up(F.relu(h))  # [N, w, H/4, W/4]
        for blk in self.dec:
            h = blk(h, gs.pop(0), bs.pop(0))
        residual: torch.Tensor = self.head(F.relu(h))  # [N, 3, H, W]
        return (frame + residual).clamp(0.0, 1.0)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weight_bytes(model: nn.Module) -> int:
    """Size of the float32 weights (what the safetensors file holds, less its small header)."""
    return 4 * param_count(model)


@dataclass
class LiveState:
    """What a stream carries from one frame to the next: the previous output (and input), [1, 3, H, W]
    float32 in [0, 1], at the padded size."""

    prev_out: torch.Tensor
    prev_in: torch.Tensor


def to_nchw(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 → [1, 3, H, W] float32 in [0, 1]."""
    return np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def to_hwc(x: np.ndarray) -> np.ndarray:
    """[1, 3, H, W] float in [0, 1] → [H, W, 3] uint8, rounded."""
    return np.ascontiguousarray((np.clip(x[0], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))


def pad_to_multiple(x: np.ndarray, multiple: int = MULTIPLE) -> tuple[np.ndarray, tuple[int, int]]:
    """[1, C, H, W] → reflect-padded at the bottom and right to multiples of `multiple`, and the (H, W)."""
    h, w = x.shape[2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    return x, (h, w)


@torch.no_grad()
def step(
    model: LiveNet, state: LiveState | None, frame: np.ndarray, cond: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, LiveState]:
    """One frame of a stream in torch: `frame` [H, W, 3] uint8, `cond` [384] → ([H, W, 3] uint8, state).
    The first frame (state None) takes itself as the previous output, as training's cold start does."""
    x_np, (h, w) = pad_to_multiple(to_nchw(frame))
    x = torch.from_numpy(x_np)  # [1, 3, H', W']
    c = torch.tensor(np.asarray(cond), dtype=torch.float32).reshape(1, -1)  # [1, 384]; a copy: cond may be read-only
    if state is None or state.prev_out.shape != x.shape:
        state = LiveState(prev_out=x, prev_in=x)
    out = model(x, state.prev_out, c, state.prev_in)  # [1, 3, H', W']
    return to_hwc(out[:, :, :h, :w].numpy()), LiveState(prev_out=out, prev_in=x)


def export_onnx(model: LiveNet, path: str | Path, size: int | tuple[int, int] = 384) -> Path:
    """Write `model` as ONNX (opset 17, TorchScript exporter) with dynamic batch, height and width; `size`
    is the example input's (H, W) (multiples of 8)."""
    h, w = (size, size) if isinstance(size, int) else size
    if h % MULTIPLE or w % MULTIPLE:
        raise ValueError(f"H and W must be multiples of {MULTIPLE}, got {h}×{w}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.rand(1, 3, h, w)  # [1, 3, H, W]
    cond = torch.zeros(1, model.cond_dim)  # [1, 384]
    names = ["frame", "prev_out", "cond"] + (["prev_in"] if model.prev_input else [])
    args = (x, x, cond) + ((x,) if model.prev_input else ())
    image_axes = {0: "n", 2: "h", 3: "w"}
    dynamic: dict[str, dict[int, str]] = {n: image_axes for n in names if n != "cond"}
    dynamic["cond"] = {0: "n"}
    dynamic["out"] = image_axes
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy exporter's notice
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=False,  # the TorchScript exporter: no onnxscript, a plain graph (as train_espcn.py)
                input_names=names,
                output_names=["out"],
                dynamic_axes=dynamic,  # type: ignore[arg-type]
                opset_version=17,
            )
    finally:
        model.train(was_training)
    return path


class OnnxLive:
    """The exported student on ONNX Runtime (CPU). `step` works on float32 NCHW arrays in [0, 1] (H and W
    multiples of 8); `stream` on uint8 HWC frames of any size, carrying the state itself."""

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session: Any = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.prev_input = "prev_in" in self.inputs

    def step(
        self, prev_out: np.ndarray, frame: np.ndarray, cond: np.ndarray, prev_in: np.ndarray | None = None
    ) -> np.ndarray:
        """prev_out, frame (, prev_in): [N, 3, H, W] float32 in [0, 1]; cond: [N, 384] → out [N, 3, H, W]."""
        feed = {"frame": frame, "prev_out": prev_out, "cond": cond.reshape(frame.shape[0], -1)}
        if self.prev_input:
            feed["prev_in"] = prev_in if prev_in is not None else frame
        return np.asarray(self.session.run(["out"], {k: v.astype(np.float32) for k, v in feed.items()})[0])

    def stream(self, frames: Iterable[np.ndarray], cond: np.ndarray) -> Iterator[np.ndarray]:
        """[H, W, 3] uint8 frames → the look, frame by frame; the first frame is its own previous output."""
        c = np.asarray(cond, dtype=np.float32).reshape(1, -1)  # [1, 384]
        prev_out: np.ndarray | None = None
        prev_in: np.ndarray | None = None
        for frame in frames:
            x, (h, w) = pad_to_multiple(to_nchw(frame))  # [1, 3, H', W']
            if prev_out is None or prev_out.shape != x.shape:
                prev_out, prev_in = x, x
            out = self.step(prev_out, x, c, prev_in)
            prev_out, prev_in = out, x
            yield to_hwc(out[:, :, :h, :w])


def latency_ms(runner: OnnxLive, size: int, frames: int = 20, seed: int = 0) -> dict[str, float]:
    """Median and p99 milliseconds of `runner.step` at size×size over `frames` calls (after 3 warm-ups)."""
    rng = np.random.default_rng(seed)
    x = rng.random((1, 3, size, size), dtype=np.float32)  # [1, 3, S, S]
    cond = rng.standard_normal((1, COND_DIM)).astype(np.float32)
    prev = x
    for _ in range(3):
        prev = runner.step(prev, x, cond)
    ms = []
    for _ in range(frames):
        t0 = time.perf_counter()
        prev = runner.step(prev, x, cond)
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"median": float(np.median(ms)), "p99": float(np.percentile(ms, 99))}


def main() -> None:
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description="ONNX Runtime latency of a randomly initialised LiveNet")
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--mid-width", type=int, default=None, help="channels at 1/8 (default 2·width)")
    ap.add_argument("--blocks", type=int, nargs=3, default=[1, 4, 1])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = LiveNet(width=args.width, mid_width=args.mid_width, blocks=tuple(args.blocks))
    for p in net.parameters():  # zero-initialised layers would let ONNX Runtime fold work away
        nn.init.normal_(p, std=0.02)
    print(f"LiveNet({net.config}): {param_count(net):,} parameters, {weight_bytes(net) / 1e6:.2f} MB fp32")
    with tempfile.TemporaryDirectory() as d:
        runner = OnnxLive(export_onnx(net, Path(d) / "live.onnx", 64), threads=args.threads)
        for s in args.sizes:
            ms = latency_ms(runner, s, args.frames)
            print(f"{s}×{s}, {args.threads} thread(s): median {ms['median']:.1f} ms, p99 {ms['p99']:.1f} ms")


if __name__ == "__main__":
    main()
