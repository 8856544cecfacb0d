"""ECBSR, the default CPU upscaler: the re-parameterisation is exact, the three backends run the same
weights, colour stays bicubic's, user weights in either form load, and it beats Lanczos on a clip."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from framefleet.errors import InputError, ModelError
from framefleet.models.upscale import load_upscaler
from framefleet.models.upscale.ecbsr import build_ecbsr, weights_path
from framefleet.models.upscale.espcn import add_luma_residual, luma_planar
from framefleet.quality.degrade import Degradation, degrade_frames

from conftest import sample_frames as frames

needs_weights = pytest.mark.skipif(not weights_path(2).is_file(), reason="the shipped ECBSR weights are not built")


def get_dummy_components(seed: int = 0, m: int = 2, c: int = 8) -> torch.nn.Module:
    """A tiny seeded ECBSR in its training form, every parameter (the last conv's too) non-zero."""
    torch.manual_seed(seed)
    net = build_ecbsr(2, m, c, train=True)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.15)
    return net.eval()


def test_the_blocks_collapse_exactly_into_plain_convs() -> None:
    """Branch by branch (as the paper draws the block), the online-collapsed training form and the deployed
    plain net compute one function, borders included (the 1×1 branches are padded with their bias)."""
    net = get_dummy_components()
    x = torch.rand(2, 1, 13, 17)  # [N, 1, h, w]: odd sizes, so every border matters
    with torch.no_grad():
        h = x
        for block in net.convs[:-1]:
            h = torch.relu(block.forward_branches(h))
        by_branches = net.shuffle(net.convs[-1].forward_branches(h))  # [2, 1, 26, 34]
        collapsed, deployed = net(x), net.deploy()(x)
    scale = by_branches.abs().max()
    assert torch.allclose(collapsed, by_branches, atol=1e-5 * scale) and torch.equal(collapsed, deployed)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.deploy().modules()) == 4  # M + 2 plain convs


def test_an_untrained_net_is_bicubic() -> None:
    x = torch.rand(1, 1, 8, 8)
    assert build_ecbsr(2, 2, 8, train=True)(x).abs().max() == 0 and build_ecbsr(2, 2, 8)(x).abs().max() == 0


@pytest.mark.parametrize("form", ["train", "deploy"])
@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_user_weights_in_either_form_run_on_every_backend(tmp_path: Path, form: str, backend: str) -> None:
    from safetensors.torch import save_file

    net = get_dummy_components()
    state = net.state_dict() if form == "train" else net.deploy().state_dict()
    path = tmp_path / f"mine-{form}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    x = frames(2)
    with torch.no_grad():
        detail = net.deploy()(torch.from_numpy(luma_planar(x))).numpy()  # [2, 1, 2h, 2w]
    want = add_luma_residual(x, detail, 2)
    up = load_upscaler("ecbsr", backend=backend, device="cpu", weights=path)
    got = up(x)
    # f32 runtimes agree to a rounding step; OpenVINO computes in bf16 where the CPU has it
    tolerance = 1 if "bf16" not in up.backend else 6  # type: ignore[attr-defined]
    assert np.abs(got.astype(int) - want).max() <= tolerance
    assert np.abs(want.astype(int) - load_upscaler("bicubic")(x)).max() > 2  # the residual does something


@needs_weights
def test_shipped_weights_agree_across_backends_and_tiles() -> None:
    from framefleet.quality.fullref import psnr

    x = frames(2, crop=(96, 128))
    onnx = load_upscaler("ecbsr", backend="onnx")(x)
    assert np.abs(load_upscaler("ecbsr", backend="torch", device="cpu")(x).astype(int) - onnx).max() <= 1
    openvino = load_upscaler("ecbsr", backend="openvino")
    diff = np.abs(openvino(x).astype(int) - onnx)
    if "bf16" in openvino.backend:  # type: ignore[attr-defined]
        assert psnr(onnx, openvino(x)) > 50 and diff.max() <= 4, (diff.max(), psnr(onnx, openvino(x)))
    else:
        assert diff.max() <= 1
    tiled = load_upscaler("ecbsr", backend="onnx", tile=40)
    assert np.abs(tiled(x).astype(int) - onnx).max() <= 1  # the overlap covers the receptive field: no seams


@needs_weights
def test_one_luma_residual_so_colour_stays_bicubic() -> None:
    """The same δY on R, G and B: Cb and Cr (differences between channels) are bicubic's."""
    x = frames(2, crop=(72, 88))
    out = load_upscaler("ecbsr", backend="onnx")(x).astype(int)  # [2, 144, 176, 3]
    base = np.stack([cv2.resize(f.astype(np.float32), (176, 144), interpolation=cv2.INTER_CUBIC) for f in x])
    delta = out - base  # [2, 144, 176, 3]: δY on every channel, ± rounding
    inside = ((base > 1) & (base < 254)).all(-1) & ((out > 0) & (out < 255)).all(-1)  # no clipping
    spread = delta.max(-1) - delta.min(-1)
    assert spread[inside].max() <= 1.01
    assert np.abs(delta[inside]).mean() > 0.3


@needs_weights
def test_beats_lanczos_by_half_a_db_on_a_clean_downscale_of_a_real_clip() -> None:
    hr = frames(4, crop=(144, 176))
    lr = degrade_frames(list(hr), Degradation("bicubic"))
    luma = lambda f: np.stack([cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) for a in f]).astype(float)  # noqa: E731
    err = {n: np.mean((luma(load_upscaler(n)(lr)) - luma(hr)) ** 2) for n in ("lanczos", "ecbsr")}
    gain = 10 * np.log10(err["lanczos"] / err["ecbsr"])
    assert gain >= 0.5, gain


def test_bad_weights_are_refused_with_a_reason(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    with pytest.raises(InputError, match="does not exist"):
        load_upscaler("ecbsr", weights=tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3, 3, 3)}, str(other))
    with pytest.raises(ModelError, match="not an ECBSR"):
        load_upscaler("ecbsr", backend="torch", weights=other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not weights")
    with pytest.raises(ModelError, match="cannot read"):
        load_upscaler("ecbsr", backend="torch", weights=junk)
    with pytest.raises(InputError, match="unknown backend"):
        load_upscaler("ecbsr", backend="tensorrt", weights=other)
    with pytest.raises(InputError, match=r"does not support scale 3"):
        load_upscaler("ecbsr", scale=3)


def test_trainer_learns_and_saves_both_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """training/train_ecbsr.py on two photographs for a few steps: the residual moves off zero, the saved
    plain net equals the saved training form collapsed, and the ONNX export runs."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "training"))
    import train_ecbsr
    from safetensors.torch import load_file

    from framefleet.media.samples import read_photo

    photos = {n: read_photo(n)[:128, :160] for n in ("rocket.jpg", "coffee.png", "chelsea.png", "astronaut.png")}
    monkeypatch.setattr(train_ecbsr, "photographs", lambda graphics: dict(photos))
    monkeypatch.setattr(train_ecbsr, "grid", lambda: [Degradation("bicubic"), Degradation("area", 0.7, 28)])
    out = tmp_path / "tiny.safetensors"
    argv = ["train_ecbsr.py", "--m", "1", "--c", "4", "--steps", "30", "--batch", "4", "--patch", "24",
            "--variants", "2", "--threads", "1", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    train_ecbsr.main()
    plain, train_form = load_file(str(out)), load_file(str(out.with_suffix(".train.safetensors")))
    net = build_ecbsr(2, 1, 4, train=True)
    net.load_state_dict(train_form)
    x = torch.rand(1, 1, 10, 12)
    deployed = build_ecbsr(2, 1, 4)
    deployed.load_state_dict(plain)
    with torch.no_grad():
        assert torch.allclose(net(x), deployed(x), atol=1e-6) and deployed(x).abs().max() > 0
    if importlib.util.find_spec("onnxruntime"):
        up = load_upscaler("ecbsr", backend="onnx", weights=out)
        assert up(frames(1)).shape == (1, 96, 128, 3)


def test_openvino_is_imported_without_its_telemetry() -> None:
    """`import openvino` alone sends a usage event from a forked process; ours loads it with that stubbed out,
    so no telemetry module, no sender thread, and the process exits at once (it hung offline before)."""
    import subprocess
    import sys

    code = (
        "import sys, threading\n"
        "from framefleet.models.upscale import default_cpu_backend, load_upscaler\n"
        "default_cpu_backend()\n"
        "load_upscaler('ecbsr', backend='openvino')\n"
        "assert not any(m.startswith('openvino_telemetry') and sys.modules[m] for m in sys.modules), 'telemetry'\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
