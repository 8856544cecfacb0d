"""Our CPU upscaler since enhance round 2: ECBSR (Zhang, Zeng & Zhang, 2021, "Edge-oriented Convolution
Block for Real-time Super Resolution on Mobile Devices"), a plain stack of 3×3 convs that learns δY, the
luma residual over bicubic, as ESPCN v4 did:

    δY = shuffle_r(conv3×3(C→r²) ∘ [relu ∘ conv3×3(C→C)]^M ∘ relu ∘ conv3×3(1→C) (Y))
    RGB = bicubic(RGB) + δY, the same δY on R, G and B (Cb and Cr stay bicubic's)

Each conv is *trained* as an edge-oriented convolution block (ECB): a 3×3 conv, a 1×1 expanding into a 3×3,
and 1×1 convs followed by fixed Sobel-x, Sobel-y and Laplacian filters with learned scales, plus the identity.
All branches are linear, so after training they sum exactly into one 3×3 conv (`ECB.collapse`): the richer
block trains better, the network that runs is the plain one. ReLU instead of the paper's PReLU: ONNX Runtime
and OpenVINO fuse Conv+ReLU, and an unfused PReLU cost 2.8× the whole net's time on ONNX Runtime here.

Why this net and not a wider ESPCN: for its multiply-adds it is the strongest in its paper's table (M4C16,
10 k multiply-adds per low-res pixel, beats FSRCNN at 12 k), and 3×3 ReLU stacks are what both CPU runtimes
optimise best (Winograd, fused activations, bf16 on CPUs that have it).

The shipped weights (`weights/ecbsr-x2.safetensors`, already collapsed, and `weights/ecbsr-x2.onnx`) come
from `training/train_ecbsr.py`. Weights a user brings in the training form (ECB keys, e.g. from that script's
checkpoints) are collapsed on load.

    framefleet enhance clip.mp4 --model ecbsr --scale 2        # OpenVINO or ONNX Runtime on the CPU
"""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from framefleet.errors import InputError, ModelError
from framefleet.models.upscale.base import (
    ArrayFn,
    LearnedUpscaler,
    check_scale,
    export_upscaler_onnx,
    file_digest,
    onnx_fn,
    openvino_fn,
    resolve_device,
    torch_fn,
    torch_label,
)
from framefleet.models.upscale.espcn import add_luma_residual, luma_planar

VERSION = "1"
SCALES = (2,)
WEIGHTS_DIR = Path(__file__).parent / "weights"
BACKENDS = ("openvino", "onnx", "torch")


def weights_path(scale: int, kind: str = "safetensors") -> Path:
    return WEIGHTS_DIR / f"ecbsr-x{scale}.{kind}"


def _edge_kernels() -> Any:
    import torch

    sobel_x = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    return torch.stack([sobel_x, sobel_x.T, torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])])  # [3, 3, 3]


def _bias(conv: Any) -> Any:
    return conv.bias  # every conv here has one (bias=True); torch types it Optional


def build_ecb(c_in: int, c_out: int, expand: int = 2) -> Any:
    """One edge-oriented convolution block (training form). `collapse()` gives the equal 3×3 conv."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ECB(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c_in, self.c_out = c_in, c_out
            self.conv3 = nn.Conv2d(c_in, c_out, 3, padding=1)
            self.expand1 = nn.Conv2d(c_in, expand * c_out, 1)
            self.expand3 = nn.Conv2d(expand * c_out, c_out, 3)  # padded by hand: see `_pad_with_bias`
            self.edge1 = nn.Conv2d(c_in, 3 * c_out, 1)  # the three 1×1 convs before Sobel-x, Sobel-y, Laplacian
            self.edge_scale = nn.Parameter(torch.randn(3, c_out, 1, 1) * 1e-3)  # [sobel-x, sobel-y, laplacian]
            self.edge_bias = nn.Parameter(torch.zeros(3, c_out))
            self.edge_kernels: torch.Tensor
            self.register_buffer("edge_kernels", _edge_kernels(), persistent=False)
            self.identity = c_in == c_out

        @staticmethod
        def _pad_with_bias(t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            # The 1×1 conv's output outside the image is its bias, not 0: padding with the bias makes the
            # two convs in series exactly one 3×3 conv (zero-padded input) at the borders too.
            t = F.pad(t, (1, 1, 1, 1))  # [N, D, H+2, W+2]
            b = bias.view(1, -1, 1, 1)
            t[:, :, 0:1, :], t[:, :, -1:, :], t[:, :, :, 0:1], t[:, :, :, -1:] = b, b, b, b
            return t

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, c_in, H, W]
            # Trained as the one conv the branches sum to, its weight a differentiable function of the
            # branches' parameters (online re-parameterisation, as OREPA): the same function and gradients
            # as running the six branches, at the cost of one conv (7.5× faster to train here).
            w, b = self.collapse()
            return F.conv2d(x, w, b, padding=1)  # [N, c_out, H, W]

        def forward_branches(self, x: torch.Tensor) -> torch.Tensor:
            """The block as its paper draws it, branch by branch: what `collapse` must equal (tested)."""
            y: torch.Tensor = self.conv3(x)  # [N, c_out, H, W]
            y = y + self.expand3(self._pad_with_bias(self.expand1(x), _bias(self.expand1)))
            edges = self._pad_with_bias(self.edge1(x), _bias(self.edge1))  # [N, 3·c_out, H+2, W+2]
            for k in range(3):
                kernel = (self.edge_scale[k] * self.edge_kernels[k]).unsqueeze(1)  # [c_out, 1, 3, 3] depthwise
                t = edges[:, k * self.c_out : (k + 1) * self.c_out]
                y = y + F.conv2d(t, kernel, self.edge_bias[k], groups=self.c_out)
            return y + x if self.identity else y

        def collapse(self) -> tuple[torch.Tensor, torch.Tensor]:
            """(weight [c_out, c_in, 3, 3], bias [c_out]) of the one conv this block equals."""
            w1, b1 = self.expand1.weight[:, :, 0, 0], _bias(self.expand1)  # [D, c_in], [D]
            w = self.conv3.weight + torch.einsum("odyx,di->oiyx", self.expand3.weight, w1)  # [c_out, c_in, 3, 3]
            b = _bias(self.conv3) + _bias(self.expand3) + torch.einsum("odyx,d->o", self.expand3.weight, b1)
            we = self.edge1.weight[:, :, 0, 0].view(3, self.c_out, self.c_in)  # [3, c_out, c_in]
            be = _bias(self.edge1).view(3, self.c_out)
            for k in range(3):
                dk = self.edge_scale[k, :, 0, 0, None, None] * self.edge_kernels[k]  # [c_out, 3, 3]
                w = w + dk[:, None] * we[k, :, :, None, None]
                b = b + self.edge_bias[k] + dk.sum((1, 2)) * be[k]
            if self.identity:
                eye = torch.zeros_like(w)
                eye[torch.arange(self.c_out), torch.arange(self.c_in), 1, 1] = 1
                w = w + eye
            return w, b

    return ECB()


def build_ecbsr(scale: int = 2, m: int = 4, c: int = 16, *, train: bool = False) -> Any:
    """The residual branch: Y [N, 1, h, w] in 0..1 → δY [N, 1, sh, sw]. `train` builds it from ECBs;
    otherwise from plain 3×3 convs named conv0..conv{m+1} (what ships, and what the ONNX graph runs)."""
    import torch
    from torch import nn

    widths = [1] + [c] * (m + 1) + [scale * scale]

    class ECBSR(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale, self.m, self.c = scale, m, c
            make = build_ecb if train else (lambda i, o: nn.Conv2d(i, o, 3, padding=1))
            self.convs = nn.ModuleList(make(i, o) for i, o in itertools.pairwise(widths))
            self.shuffle = nn.PixelShuffle(scale)
            last: Any = self.convs[-1]
            with torch.no_grad():  # every branch of the last conv starts at zero: an untrained net is bicubic
                for p in (last.conv3, last.expand3) if train else (last,):
                    p.weight.zero_()
                    p.bias.zero_()
                if train:
                    last.edge_scale.zero_()
                    last.edge_bias.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 1, h, w]
            for conv in self.convs[:-1]:
                x = torch.relu(conv(x))  # [N, C, h, w]
            detail: torch.Tensor = self.shuffle(self.convs[-1](x))  # [N, 1, sh, sw]: added to bicubic
            return detail

        def deploy(self) -> nn.Module:
            """The plain net equal to this one (itself if it is plain already)."""
            if not train:
                return self
            plain = build_ecbsr(scale, m, c)
            with torch.no_grad():
                blocks: list[Any] = list(self.convs)
                for block, conv in zip(blocks, plain.convs, strict=True):
                    w, b = block.collapse()
                    conv.weight.copy_(w)
                    conv.bias.copy_(b)
            deployed: nn.Module = plain.eval()
            return deployed

    return ECBSR()


def shape_of(state: dict[str, Any]) -> tuple[int, int, bool]:
    """(M, C, training form?) of saved ECBSR weights, read from their keys and shapes."""
    layers = sorted({int(k.split(".")[1]) for k in state if re.match(r"convs\.\d+\.", k)})
    if not layers or layers != list(range(len(layers))) or len(layers) < 3:
        raise ModelError("these weights are not an ECBSR (expected keys convs.0 … convs.N, N ≥ 2)")
    train = any(".conv3." in k for k in state)
    first = state["convs.0.conv3.weight" if train else "convs.0.weight"]  # [C, 1, 3, 3]
    if first.shape[1] != 1:
        raise ModelError(f"ECBSR weights must read 1 channel (luma), these read {first.shape[1]}")
    return len(layers) - 2, int(first.shape[0]), train


def read_state(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file (torch), or a ModelError saying why not."""
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except Exception as e:  # safetensors raises its own types for a file that is not safetensors
        raise ModelError(f"cannot read ECBSR weights {path}: {e}") from None


def load_module(state: dict[str, Any], scale: int, what: str = "these weights") -> Any:
    """The plain (deployable) net from saved weights in either form."""
    m, c, train = shape_of(state)
    net = build_ecbsr(scale, m, c, train=train)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ModelError(f"{what} do not fit an ECBSR M{m}C{c} ×{scale}: {e}") from None
    return net.deploy().eval()


class ECBSRUpscaler(LearnedUpscaler):
    name = "ecbsr"
    version = VERSION

    def __init__(
        self,
        *,
        scale: int = 2,
        backend: str = "openvino",
        device: str = "auto",
        tile: int = 0,
        batch: int = 1,
        bf16: bool = True,
        weights: Path | None = None,
    ) -> None:
        check_scale(self.name, scale, SCALES)
        self.scale = scale
        source = weights or weights_path(scale)
        if weights is not None and not weights.is_file():
            raise InputError(f"--weights {weights} does not exist; pass an ECBSR .safetensors file")
        if not source.is_file():
            raise ModelError(f"{source} is missing; reinstall framefleet or run training/train_ecbsr.py")
        if backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r} for ecbsr; choose one of {', '.join(BACKENDS)}")
        state = read_state(source)
        m, _, _ = shape_of(state)
        if backend == "torch":
            dev = resolve_device(device)
            fn = torch_fn(load_module(state, scale, str(source)), dev, bf16=bf16)
            label = torch_label(dev, bf16)
        elif weights is None:  # the shipped weights have their ONNX export beside them
            fn, label = _cpu_runtime(backend, weights_path(scale, "onnx"), bf16)
        else:  # a user's weights are exported once, into a folder that is gone once the runtime holds the model
            with tempfile.TemporaryDirectory(prefix="framefleet-ecbsr-") as tmp:
                onnx = Path(tmp) / "ecbsr.onnx"
                export_onnx(load_module(state, scale, str(source)), onnx)
                fn, label = _cpu_runtime(backend, onnx, bf16)
        super().__init__(
            fn,
            backend=label,
            tile=tile,
            overlap=m + 2,  # M + 2 convs of 3×3: one pixel each side per conv
            batch=batch,
            extra={"weights": file_digest(source)},
        )

    def net_input(self, frames: np.ndarray) -> np.ndarray:
        return luma_planar(frames)  # [n, 1, H, W]

    def picture(self, frames: np.ndarray, y: np.ndarray) -> np.ndarray:
        return add_luma_residual(frames, y, self.scale)  # bicubic RGB + δY, rounded once


def _cpu_runtime(backend: str, onnx: Path, bf16: bool) -> tuple[ArrayFn, str]:
    if backend == "onnx":
        return onnx_fn(onnx)[0], "onnx-cpu"
    fn, precision = openvino_fn(onnx, bf16=bf16)
    return fn, f"openvino-cpu-{precision}"


def export_onnx(module: Any, out: Path) -> None:
    export_upscaler_onnx(module, out, channels=1)  # reads luma
