"""The animate engine on tiny seeded models of the real classes (ours and the SVD family), saved as
diffusers folders and loaded back through from_pretrained: folder checks, guidance passes, samplers,
the after-projection attention processor, bf16, and both distillations (resumable, loss falls)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from framefleet.errors import InputError
from framefleet.models.animate.attention import (
    SharedContextAttnProcessor,
    cross_attention_modules,
    measure_attention_cost,
    set_shared_context,
)
from framefleet.models.animate.distill import DistillConfig, SigmaSpace, distill_model, guidance_input_of, midpoints
from framefleet.models.animate.loading import check_model_folder, load_pipeline

from animate_fixtures import save_tiny_framefleet, save_tiny_svd, tiny_framefleet_unet, tiny_svd_components

IMAGE = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_framefleet(tmp_path_factory.mktemp("models") / "tiny-ours")


@pytest.fixture(scope="module")
def svd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_svd(tmp_path_factory.mktemp("models") / "tiny-svd")


@pytest.fixture(scope="module")
def ours_pipe(ours: Path):  # type: ignore[no-untyped-def]
    return load_pipeline(ours)


def test_loads_both_families_through_from_pretrained(ours: Path, svd: Path, ours_pipe) -> None:  # type: ignore[no-untyped-def]
    assert type(ours_pipe.unet).__name__ == "FramefleetVideoUNet"
    assert ours_pipe.text_encoder is not None  # MiniLM, from the installed wheel, offline
    out = ours_pipe(IMAGE, "pan left", num_inference_steps=2, sampler="euler")
    assert out.frames.shape == (4, 32, 32, 3) and out.frames.dtype == np.uint8
    pipe = load_pipeline(svd)
    assert type(pipe.unet).__name__ == "UNetSpatioTemporalConditionModel" and pipe.vae is not None
    out = pipe(IMAGE, "", num_inference_steps=2, num_frames=3, decode_chunk_size=2)
    assert out.frames.shape == (3, 32, 32, 3)
    assert out.conditions == ("uncond", "image") and out.denoiser_passes == 4


def test_same_seed_same_video_other_seed_other(ours_pipe) -> None:  # type: ignore[no-untyped-def]
    a = ours_pipe(IMAGE, "zoom in", num_inference_steps=2, seed=3).frames
    b = ours_pipe(IMAGE, "zoom in", num_inference_steps=2, seed=3).frames
    c = ours_pipe(IMAGE, "zoom in", num_inference_steps=2, seed=4).frames
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("prompt", "s_image", "s_text", "passes"),
    [
        ("pan left", 1.5, 4.0, 3),
        ("", 1.5, 4.0, 2),
        ("   ", 1.5, 4.0, 2),
        ("pan left", 1.0, 1.0, 1),
        ("pan left", 2.0, 1.0, 2),
    ],
)
def test_three_way_guidance_counts_its_passes(
    ours_pipe, prompt: str, s_image: float, s_text: float, passes: int
) -> None:  # type: ignore[no-untyped-def]
    out = ours_pipe(IMAGE, prompt, num_inference_steps=3, guidance_image=s_image, guidance_text=s_text)
    assert out.denoiser_passes == 3 * passes and len(out.conditions) == passes


def test_three_way_guidance_formula() -> None:
    from framefleet.models.animate.pipeline import AnimatePipeline

    u, i, it = torch.tensor(1.0), torch.tensor(3.0), torch.tensor(4.0)
    got = AnimatePipeline.combine({"uncond": u, "image": i, "image_text": it}, 1.5, 4.0)
    assert float(got) == pytest.approx(1 + 1.5 * 2 + 4.0 * 1)  # InstructPix2Pix's form
    assert float(AnimatePipeline.combine({"uncond": u, "image": i}, 2.0, 9.0)) == pytest.approx(1 + 2.0 * 2)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp", "ddim"])
def test_samplers_run_and_differ_from_noise(ours_pipe, sampler: str) -> None:  # type: ignore[no-untyped-def]
    out = ours_pipe(IMAGE, "pan right", num_inference_steps=4, sampler=sampler)
    assert out.sampler == sampler and out.steps == 4 and out.frames.std() > 1


def test_bad_sampler_steps_frames(ours_pipe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="unknown sampler"):
        ours_pipe(IMAGE, "", sampler="heun")
    with pytest.raises(InputError, match="--steps 0"):
        ours_pipe(IMAGE, "", num_inference_steps=0)
    with pytest.raises(InputError, match="makes 4 frames"):
        ours_pipe(IMAGE, "", num_frames=5)


def _plain_and_shared(unet: torch.nn.Module, call) -> tuple[torch.Tensor, torch.Tensor, int]:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        set_shared_context(unet, False)
        plain = call()
        proc = set_shared_context(unet, True)
        assert isinstance(proc, SharedContextAttnProcessor)
        proc.videos = 2
        calls = 0
        original = SharedContextAttnProcessor.__call__

        def counting(self, *a, **k):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            return original(self, *a, **k)

        SharedContextAttnProcessor.__call__ = counting  # type: ignore[method-assign]
        try:
            shared = call()
        finally:
            SharedContextAttnProcessor.__call__ = original  # type: ignore[method-assign]
            set_shared_context(unet, False)
    return plain, shared, calls


def test_shared_context_processor_equals_plain_on_ours() -> None:
    unet = tiny_framefleet_unet().eval()
    g = torch.Generator().manual_seed(1)
    x, img, text = (
        torch.randn(2, 4, 3, 32, 32, generator=g),
        torch.randn(2, 3, 32, 32, generator=g),
        torch.randn(2, 384, generator=g),
    )
    plain, shared, calls = _plain_and_shared(unet, lambda: unet(x, torch.tensor([10, 900]), img, text))
    assert calls == len(cross_attention_modules(unet)) > 0
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-4)
    # and the context matters, so equality is not a model ignoring it
    assert (unet(x, torch.tensor([10, 900]), img, text * 0) - plain).abs().max() > 1e-4
    cost = measure_attention_cost(unet, 2, lambda: unet(x, torch.tensor([10, 900]), img, text))
    assert cost.calls > 0 and cost.shared_flops * 4 == cost.plain_flops  # 4 frames share one context


def test_shared_context_processor_equals_plain_on_svd() -> None:
    unet = tiny_svd_components()["unet"].eval()  # type: ignore[attr-defined]
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 8, 16, 16, generator=g)
    ctx = torch.randn(2, 1, 32, generator=g)
    ids = torch.tensor([[6.0, 127.0, 0.02]] * 2)
    plain, shared, calls = _plain_and_shared(unet, lambda: unet(x, torch.tensor(0.5), ctx, ids, return_dict=False)[0])
    assert calls > 0  # spatial (repeated per frame) and temporal (repeated per pixel) cross-attention
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=1e-4)


def test_bf16_close_to_fp32(ours_pipe) -> None:  # type: ignore[no-untyped-def]
    a = ours_pipe(IMAGE, "pan up", num_inference_steps=2).frames.astype(float)
    ours_pipe.enable_bf16(True)
    try:
        b = ours_pipe(IMAGE, "pan up", num_inference_steps=2).frames.astype(float)
    finally:
        ours_pipe.enable_bf16(False)
    assert np.abs(a - b).mean() < 6 and not np.array_equal(a, b)


# --- folder checks --------------------------------------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_component_is_named(svd: Path, tmp_path: Path) -> None:
    broken = _copy(svd, tmp_path / "no-vae")
    shutil.rmtree(broken / "vae")
    with pytest.raises(InputError, match=r"component 'vae' \(AutoencoderKLTemporalDecoder\) is missing"):
        load_pipeline(broken)


def test_missing_weights_and_mismatched_class_are_named(svd: Path, ours: Path, tmp_path: Path) -> None:
    broken = _copy(svd, tmp_path / "no-weights")
    for f in (broken / "image_encoder").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(InputError, match="component 'image_encoder' has no weights"):
        check_model_folder(broken)
    mixed = _copy(svd, tmp_path / "mixed")
    shutil.rmtree(mixed / "unet")
    shutil.copytree(ours / "unet", mixed / "unet")
    with pytest.raises(InputError, match=r"component 'unet' is a FramefleetVideoUNet but model_index\.json says"):
        check_model_folder(mixed)
    index = json.loads((svd / "model_index.json").read_text())
    del index["unet"]
    no_unet = _copy(svd, tmp_path / "no-unet")
    (no_unet / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(InputError, match="names no 'unet' component"):
        check_model_folder(no_unet)


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="neither a shipped model"):
        load_pipeline(tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"no model_index\.json"):
        load_pipeline(tmp_path)


# --- distillation ---------------------------------------------------------------------------------


def test_sigma_grids_nest_for_our_schedule() -> None:
    from framefleet.models.animate.reference import default_scheduler

    space = SigmaSpace(default_scheduler("teacher").config)
    s8, s16 = space.sigmas(8), space.sigmas(16)
    assert torch.allclose(midpoints(s8, s16), s16[1::2])
    assert torch.allclose(space.timestep(s8[:-1]), torch.tensor([999.0, 874, 749, 624, 499, 374, 249, 124]), atol=1e-3)


def test_distill_ours_resumes_and_loss_falls(ours: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    # one 2→1 round at the top noise level, a fixed data seed: the loss must fall with training
    cfg = DistillConfig(student_steps=1, teacher_steps=2, iterations=4, batch=2, lr=2e-3, save_every=2, seed=1)
    ckpt = out.parent / f".{out.name}.distill" / "round-0.pt"
    from framefleet.models.animate import distill as d

    stopped = {}
    real = d.run_round

    def stop_after_round(*a, **k):  # type: ignore[no-untyped-def]
        state = real(*a, **k)
        stopped["iter"] = state.iteration
        raise KeyboardInterrupt  # the process dies after its checkpoint

    d.run_round = stop_after_round  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            distill_model(str(ours), out, cfg, show_progress=False)
    finally:
        d.run_round = real  # type: ignore[assignment]
    assert ckpt.exists() and torch.load(ckpt, weights_only=False)["iteration"] == 4
    longer = DistillConfig(**{**cfg.__dict__, "iterations": 40})
    report = distill_model(str(ours), out, longer, show_progress=False)
    (r,) = report["rounds"]
    assert r["iterations"] == 40 and r["loss_last"] < r["loss_first"]
    pipe = load_pipeline(out)
    assert pipe.guidance_distilled and pipe.default_steps == 1
    res = pipe(IMAGE, "pan left", num_inference_steps=1)
    assert res.denoiser_passes == 1 and res.conditions == ("image_text",)
    assert not ckpt.parent.exists()  # checkpoints go once the student is written


def test_distill_svd_widens_time_ids(svd: Path, tmp_path: Path) -> None:
    out = tmp_path / "svd-student"
    cfg = DistillConfig(student_steps=1, teacher_steps=2, iterations=2, batch=1, save_every=1)
    report = distill_model(str(svd), out, cfg, show_progress=False)
    assert report["passes_per_video"] == 1
    pipe = load_pipeline(out)
    assert guidance_input_of(pipe.unet) == "time_ids"
    assert pipe.unet.add_embedding.linear_1.in_features == 4 * 32
    res = pipe(IMAGE, "", num_inference_steps=1, num_frames=2, guidance_image=2.0)
    assert res.denoiser_passes == 1 and res.frames.shape == (2, 32, 32, 3)


def test_distill_bad_step_ratio(ours: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="power of two"):
        distill_model(str(ours), tmp_path / "s", DistillConfig(student_steps=8, teacher_steps=24), show_progress=False)


def test_vae_decodes_in_chunks(svd: Path) -> None:
    pipe = load_pipeline(svd)
    seen: list[int] = []
    real = pipe.vae.decode

    def spy(z, num_frames):  # type: ignore[no-untyped-def]
        seen.append(z.shape[0])
        return real(z, num_frames=num_frames)

    pipe.vae.decode = spy
    out = pipe(IMAGE, "", num_inference_steps=1, num_frames=5, decode_chunk_size=2)
    assert out.frames.shape[0] == 5 and seen == [2, 2, 1]  # at most 2 frames in the decoder at a time
