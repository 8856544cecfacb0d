"""Upscalers: the protocol, tiling, both backends, the ncnn converter against ncnn itself, user weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from framefleet.errors import InputError, ModelError
from framefleet.media import iter_frames, sample_path
from framefleet.models.upscale import ANIMEVIDEO_SCALES, load_upscaler, ncnn_model_dir
from framefleet.models.upscale.base import Upscaler
from framefleet.models.upscale.ncnn_convert import convert
from framefleet.models.upscale.srvgg import build_srvgg


def frames(n: int = 2, crop: tuple[int, int] = (48, 64)) -> np.ndarray:
    out = [f[: crop[0], : crop[1]] for _, f in zip(range(n), iter_frames(sample_path("carphone")), strict=False)]
    return np.ascontiguousarray(np.stack(out))  # [n, h, w, 3]


def get_dummy_srvgg(tmp_path: Path, *, key: str = "params_ema", scale: int = 2) -> tuple[Path, torch.nn.Module]:
    """A tiny seeded SRVGGNetCompact saved as Real-ESRGAN training saves it."""
    torch.manual_seed(0)
    net = build_srvgg(num_feat=8, num_conv=2, upscale=scale)
    path = tmp_path / f"tiny_x{scale}.pth"
    torch.save({key: net.state_dict()}, path)
    return path, net


@pytest.mark.parametrize("name", ["bicubic", "lanczos", "espcn"])
def test_protocol_shapes_and_batches(name: str) -> None:
    up = load_upscaler(name, scale=2)
    assert isinstance(up, Upscaler)
    x = frames(5)
    y = up(x)
    assert y.shape == (5, 96, 128, 3) and y.dtype == np.uint8
    # Batching never changes a frame: frame 3 alone equals frame 3 in the batch.
    assert np.abs(up(x[3:4]).astype(int) - y[3:4]).max() <= 1
    assert up(np.zeros((1, 1, 1, 3), np.uint8)).shape == (1, 2, 2, 3)  # a 1×1 frame is a frame


def test_espcn_onnx_and_torch_backends_agree_and_tiling_is_seamless() -> None:
    x = frames(2, crop=(96, 128))
    onnx = load_upscaler("espcn", backend="onnx")
    torch_cpu = load_upscaler("espcn", backend="torch", device="cpu")
    a, b = onnx(x), torch_cpu(x)
    assert np.abs(a.astype(int) - b).max() <= 1  # same weights, two runtimes
    tiled = load_upscaler("espcn", backend="onnx", tile=40)
    assert np.abs(tiled(x).astype(int) - a).max() <= 1  # overlap covers the receptive field: no seams


def test_espcn_beats_bicubic_on_a_held_out_clip() -> None:
    import cv2

    hr = frames(4, crop=(144, 176))
    lr = np.stack([cv2.resize(f, (88, 72), interpolation=cv2.INTER_AREA) for f in hr])
    err = {n: np.mean((load_upscaler(n)(lr).astype(float) - hr) ** 2) for n in ("bicubic", "espcn")}
    assert err["espcn"] < err["bicubic"]


def test_unsupported_scale_names_the_supported_ones() -> None:
    with pytest.raises(InputError, match=r"does not support scale 3.*×2"):
        load_upscaler("espcn", scale=3)
    with pytest.raises(InputError, match="unknown upscaler"):
        load_upscaler("waifu", scale=2)


def test_user_pth_loads_and_matches_the_module(tmp_path: Path) -> None:
    path, net = get_dummy_srvgg(tmp_path)
    up = load_upscaler("srvgg", weights=path, scale=2, device="cpu")
    x = frames(1)
    with torch.no_grad():
        ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32) / 255))
    ref_u8 = np.clip(ref.numpy() * 255 + 0.5, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.abs(up(x).astype(int) - ref_u8).max() <= 1
    tiled = load_upscaler("srvgg", weights=path, scale=2, device="cpu", tile=24)
    assert np.abs(tiled(x).astype(int) - ref_u8).max() <= 1
    # The plain-state-dict form loads too; a different weights file makes a different producer.
    plain = tmp_path / "plain.pth"
    torch.save(net.state_dict(), plain)
    assert load_upscaler("srvgg", weights=plain, scale=2).params()["weights"] != up.params()["weights"]


def test_user_weights_errors(tmp_path: Path) -> None:
    path, _ = get_dummy_srvgg(tmp_path)
    with pytest.raises(InputError, match="supports ×2"):
        load_upscaler("srvgg", weights=path, scale=4)
    with pytest.raises(InputError, match="--weights"):
        load_upscaler("srvgg", scale=2)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a PyTorch weights file"):
        load_upscaler("srvgg", weights=junk, scale=2)
    other = tmp_path / "other.pth"
    torch.save({"params": {"conv.weight": torch.zeros(3, 3, 3, 3)}}, other)
    with pytest.raises(ModelError, match="not a SRVGGNetCompact"):
        load_upscaler("srvgg", weights=other, scale=2)
    with pytest.raises(InputError, match="does not exist"):
        load_upscaler("srvgg", weights=tmp_path / "missing.pth", scale=2)


@pytest.mark.skipif(importlib.util.find_spec("ncnn") is None, reason="ncnn is a dev dependency")
@pytest.mark.parametrize("scale", ANIMEVIDEO_SCALES)
def test_ncnn_conversion_matches_ncnn_output(scale: int) -> None:
    import ncnn

    param = ncnn_model_dir() / f"realesr-animevideov3-x{scale}.param"
    state, meta = convert(param, param.with_suffix(".bin"))
    net = build_srvgg(int(meta["num_feat"]), int(meta["num_conv"]), int(meta["upscale"]), float(meta["post_scale"]))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = np.ascontiguousarray(frames(1)[0].transpose(2, 0, 1).astype(np.float32) / 255)  # [3, h, w]
    with torch.no_grad():
        ours = net(torch.from_numpy(x)[None])[0].numpy()
    ref = ncnn.Net()
    ref.opt.use_vulkan_compute = False
    ref.opt.use_fp16_storage = ref.opt.use_fp16_arithmetic = ref.opt.use_fp16_packed = False
    ref.load_param(str(param))
    ref.load_model(str(param.with_suffix(".bin")))
    ex = ref.create_extractor()
    mat = ncnn.Mat(x)  # keep a reference: ncnn.Mat borrows the numpy buffer
    ex.input("data", mat)
    _, out = ex.extract("output")
    theirs = np.array(out)
    assert ours.shape == theirs.shape == (3, 48 * scale, 64 * scale)
    assert np.abs(ours - theirs).max() < 1e-4


def test_pretrained_model_converts_once_and_runs(tmp_path: Path) -> None:
    up = load_upscaler("realesr-animevideov3", scale=2, cache_dir=tmp_path, device="cpu")
    assert (tmp_path / "realesr-animevideov3-x2.safetensors").is_file()
    assert up(frames(1)).shape == (1, 96, 128, 3)
    with pytest.raises(InputError, match="does not support scale 5"):
        load_upscaler("realesr-animevideov3", scale=5, cache_dir=tmp_path)


def test_bad_frames_are_refused() -> None:
    with pytest.raises(InputError, match="uint8"):
        load_upscaler("espcn")(np.zeros((1, 8, 8, 3), np.float32))
