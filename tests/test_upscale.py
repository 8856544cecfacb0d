"""Upscalers: the protocol, tiling, both backends, the ncnn converter against ncnn itself, user weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from framefleet.errors import InputError, ModelError
from framefleet.models.upscale import ANIMEVIDEO_SCALES, load_upscaler, ncnn_model_dir
from framefleet.models.upscale.base import Upscaler
from framefleet.models.upscale.espcn import add_luma_residual, bicubic_skip, build_espcn, luma_planar, widths
from framefleet.models.upscale.ncnn_convert import convert
from framefleet.models.upscale.srvgg import build_srvgg

from conftest import sample_frames as frames


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
    hr = frames(4, crop=(144, 176))
    lr = np.stack([cv2.resize(f, (88, 72), interpolation=cv2.INTER_AREA) for f in hr])
    err = {n: np.mean((load_upscaler(n)(lr).astype(float) - hr) ** 2) for n in ("bicubic", "espcn")}
    assert err["espcn"] < err["bicubic"]


def test_espcn_adds_one_luma_residual_so_colour_stays_bicubic() -> None:
    """v4 adds the same δY to R, G and B: Cb and Cr (differences between channels) are bicubic's."""
    x = frames(2, crop=(72, 88))
    out = load_upscaler("espcn")(x).astype(int)  # [2, 144, 176, 3]
    base = np.stack([cv2.resize(f.astype(np.float32), (176, 144), interpolation=cv2.INTER_CUBIC) for f in x])
    delta = out - base  # [2, 144, 176, 3]: δY on every channel, ± rounding
    inside = ((base > 1) & (base < 254)).all(-1) & ((out > 0) & (out < 255)).all(-1)  # no clipping
    spread = delta.max(-1) - delta.min(-1)
    assert spread[inside].max() <= 1.01
    assert np.abs(delta[inside]).mean() > 0.3  # and there is a residual at all


def get_dummy_espcn(tmp_path: Path, *, channels: int, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """A tiny seeded ESPCN (8×4 wide) with a non-zero last conv, saved as training saves it."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    net = build_espcn(2, 8, 4, channels=channels)
    torch.nn.init.normal_(net.conv3.weight, std=0.05)
    path = tmp_path / f"espcn-{channels}ch.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, net.eval()


@pytest.mark.parametrize("channels", [1, 3])
def test_espcn_user_weights_luma_and_rgb(tmp_path: Path, channels: int) -> None:
    """Luma (v4) and RGB-residual (v3) weights both run; each is bicubic plus the module, rounded once."""
    path, net = get_dummy_espcn(tmp_path, channels=channels)
    x = frames(2)
    up = load_upscaler("espcn", backend="torch", device="cpu", weights=path)
    planar = x.transpose(0, 3, 1, 2).astype(np.float32) / 255  # [2, 3, h, w]
    net_in = luma_planar(x) if channels == 1 else planar
    with torch.no_grad():
        detail = net(torch.from_numpy(net_in)).numpy()  # [2, C, 2h, 2w]
    if channels == 1:
        ref = add_luma_residual(x, detail, 2)
    else:
        ref = np.clip((bicubic_skip(planar, 2) + detail) * 255 + 0.5, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.abs(up(x).astype(int) - ref).max() <= 1
    assert np.abs(ref.astype(int) - load_upscaler("bicubic")(x)).max() > 2  # the residual does something


def test_distillation_starts_from_the_teacher_seen_through_grey(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """training/distill_espcn.py: the unpruned grey view of an RGB net gives, on a grey picture, the luma of
    what the RGB net gives; pruning keeps the shapes consistent."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "training"))
    from distill_espcn import LUMA, grey_view

    _, teacher = get_dummy_espcn(tmp_path, channels=3)
    student = build_espcn(2, 8, 4, channels=1)
    student.load_state_dict(grey_view(teacher.state_dict(), 8, 4))
    y = torch.rand(2, 1, 12, 16)  # [2, 1, h, w]
    with torch.no_grad():
        want = (teacher(y.expand(2, 3, 12, 16)) * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)  # [2, 1, 2h, 2w]
        assert torch.allclose(student(y), want, atol=1e-6)
    pruned = grey_view(teacher.state_dict(), 4, 2)
    assert widths(pruned) == (4, 2, 1)
    build_espcn(2, 4, 2, channels=1).load_state_dict(pruned)


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
