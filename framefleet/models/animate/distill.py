"""Guidance + step distillation: a teacher sampled with Euler at T steps × 3 guidance passes becomes a
student that samples in S steps × 1 pass (32 × 3 = 96 → 8 × 1 passes per video).

Method: progressive distillation (Salimans & Ho, 2022) with guidance distillation folded into its first
round (Meng et al., 2023). Each round halves the steps: the student learns to land, in one Euler step,
where two of its teacher's Euler steps land. In round one the teacher's steps are guided (three passes,
at guidance scales drawn per clip) and the student gets the scales as inputs, so guidance is distilled in
the same round rather than in a round of its own; later rounds distil the previous student, one pass each.
Why progressive rather than consistency distillation: each round's target is two exact teacher steps, so
the student tracks the teacher's own sampler (the benchmark compares against the teacher's output from the
same seed), and a CPU budget of a few thousand iterations suffices for a factor of two per round.

Everything runs in EDM's sigma space, which holds both our VP models and SVD's EDM ones:
x = x₀ + σε, model input x/√(σ²+1), x̂₀ = x/(σ²+1) − σ·v/√(σ²+1) for v-prediction. Euler in this space
is DDIM. Student target: x̃₀ = (x'' − (σ''/σ)·x) / (1 − σ''/σ), so one student step from x lands on x''.
Loss: truncated-SNR-weighted x₀ error, max(1/σ², 1)·‖x̂₀ − x̃₀‖².

Guidance inputs: our FramefleetVideoUNet takes (s_image, s_text) through its `guidance` embedding
(zero-initialised: the fresh student starts as the teacher's conditional model). An SVD UNet gets s_image as
a fourth added-time id: `add_embedding.linear_1` is widened with zero columns, a real config change that
`from_pretrained` loads back.

Resumable: a checkpoint per round in STUDENT_DIR/.distill/ (weights, optimiser, iteration, losses);
running the same command again continues where it stopped.

    framefleet distill teacher -o my-student --guidance --steps 8 --iterations 1000
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import EulerDiscreteScheduler

from framefleet.errors import InputError
from framefleet.models.animate.conditioning import CONDITIONS, Conditioned
from framefleet.models.animate.unet import FramefleetVideoUNet


@dataclass(frozen=True)
class DistillConfig:
    guidance: bool = True
    student_steps: int = 8
    teacher_steps: int = 32
    iterations: int = 1000  # per round
    batch: int = 4
    lr: float = 1e-4
    data: str | None = None  # a folder of images (default: our photographs, with their motion clips)
    prompts: str | None = None  # one prompt a line (default: our training vocabulary)
    seed: int = 0
    guidance_image: tuple[float, float] = (1.0, 2.5)  # s_image is drawn uniformly from this range
    guidance_text: tuple[float, float] = (2.0, 7.0)
    save_every: int = 50
    threads: int | None = None

    def rounds(self) -> list[tuple[int, int]]:
        if self.student_steps < 1 or self.teacher_steps < self.student_steps:
            raise InputError("--steps must be ≥ 1 and at most --teacher-steps")
        ratio = self.teacher_steps // self.student_steps
        if self.teacher_steps % self.student_steps or ratio & (ratio - 1):
            raise InputError(
                f"--teacher-steps {self.teacher_steps} / --steps {self.student_steps} must be a power of two "
                "(each round halves the steps)"
            )
        out, n = [], self.teacher_steps
        while n > self.student_steps:
            out.append((n, n // 2))
            n //= 2
        return out


class SigmaSpace:
    """σ grids, timesteps and x̂₀ for a model's noise schedule (see the module docstring)."""

    def __init__(self, scheduler_config: Any) -> None:
        self.euler = EulerDiscreteScheduler.from_config(scheduler_config)
        self.continuous = self.euler.config.timestep_type == "continuous"
        if self.euler.config.prediction_type != "v_prediction":
            raise InputError("distillation here supports v-prediction models (ours and SVD)")
        alphas = self.euler.alphas_cumprod.double().numpy()
        self._log_sigmas = 0.5 * np.log((1 - alphas) / alphas)

    def sigmas(self, steps: int) -> torch.Tensor:
        """The Euler sampler's σ grid for `steps` steps: [steps + 1], ending at 0."""
        self.euler.set_timesteps(steps)
        return self.euler.sigmas.float().clone()

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        if self.continuous:
            return 0.25 * sigma.log()
        t = self.euler._sigma_to_t(sigma.double().numpy(), self._log_sigmas)
        return torch.as_tensor(t, dtype=torch.float32)

    @staticmethod
    def x0(x: torch.Tensor, sigma: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, *([1] * (x.ndim - 1)))
        return x / (s**2 + 1) - s * v / (s**2 + 1).sqrt()

    @staticmethod
    def step(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, *([1] * (x.ndim - 1)))
        s2 = sigma_next.view(-1, *([1] * (x.ndim - 1)))
        return x0 + s2 * (x - x0) / s


def midpoints(coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
    """The teacher's intermediate σ between consecutive student σs: the finer grid's when the grids nest,
    else the ρ-mean (Karras, ρ = 7) of the two ends."""
    if len(fine) == 2 * (len(coarse) - 1) + 1 and torch.allclose(fine[::2], coarse, rtol=1e-4):
        return fine[1::2]
    rho = 7.0
    return ((coarse[:-1] ** (1 / rho) + coarse[1:] ** (1 / rho)) / 2) ** rho


def guidance_input_of(unet: Any) -> str:
    """How this denoiser takes guidance scales: "embed" (ours), "time_ids" (SVD, widened), or ""."""
    if isinstance(unet, FramefleetVideoUNet):
        return "embed" if unet.config.guidance_embeds else ""
    lin = getattr(getattr(unet, "add_embedding", None), "linear_1", None)
    if lin is not None and lin.in_features == 4 * unet.config.addition_time_embed_dim:
        return "time_ids"
    return ""


def make_student(teacher_unet: Any, guidance: bool) -> Any:
    """A copy of the teacher that (with `guidance`) also takes the guidance scales as inputs."""
    if not guidance or guidance_input_of(teacher_unet):
        return copy.deepcopy(teacher_unet)
    if isinstance(teacher_unet, FramefleetVideoUNet):
        student = FramefleetVideoUNet.from_config({**teacher_unet.config, "guidance_embeds": True})
        missing, unexpected = student.load_state_dict(teacher_unet.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("guidance_mlp") for k in missing)
        return student
    student = copy.deepcopy(teacher_unet)
    lin = student.add_embedding.linear_1
    extra = student.config.addition_time_embed_dim
    wider = torch.nn.Linear(lin.in_features + extra, lin.out_features)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, : lin.in_features] = lin.weight
        wider.bias.copy_(lin.bias)
    student.add_embedding.linear_1 = wider
    student.register_to_config(projection_class_embeddings_input_dim=lin.in_features + extra)
    return student


class DistillData:
    """Batches of (x₀ in the model's space, conditioning per condition set). Our models distil on the
    procedural motion clips they were trained on; any other model (or --data) on still images, each held
    for every frame: progressive distillation needs noisy inputs near the data, and the teacher supplies
    every target, so the clips need not move."""

    def __init__(self, pipe: Any, cfg: DistillConfig) -> None:
        from framefleet.models.animate import motion

        self.pipe, self.family = pipe, pipe.family
        self.rng = np.random.default_rng(cfg.seed)
        self.motion = cfg.data is None and isinstance(pipe.unet, FramefleetVideoUNet)
        if cfg.data is not None:
            self.photos = _images_in(Path(cfg.data))
        else:
            self.photos = list(motion.photographs("train").values())
        if cfg.prompts is not None:
            lines = Path(cfg.prompts).read_text().splitlines()
            self.prompts = [(p.strip(), 1.0, "") for p in lines if p.strip()]
        else:
            self.prompts = [(t, sp, k) for k, v in motion.train_prompts().items() for t, sp in v]
        if not self.prompts and self.family.has_text:
            raise InputError(f"{cfg.prompts}: no prompts in the file; give one prompt a line")
        self.frames = self.family.default_frames()
        self.size = self.family.size(None, None)

    def _clip(self) -> tuple[np.ndarray, np.ndarray, str]:
        from framefleet.models.animate import motion

        photo = self.photos[self.rng.integers(len(self.photos))]
        text, speed, kind = self.prompts[self.rng.integers(len(self.prompts))] if self.prompts else ("", 1.0, "")
        if self.motion and kind:
            near = self.photos[self.rng.integers(len(self.photos))]
            spec = motion.ClipSpec(kind, speed, self.frames, self.size[0])
            clip = motion.render_clip(photo, spec, self.rng, near=near)
            return clip[0], clip, text
        from framefleet.models.animate.conditioning import fit_square

        still = fit_square(photo, self.size)
        return still, np.repeat(still[None], self.frames, axis=0), text if self.family.has_text else ""

    @torch.no_grad()
    def batch(self, n: int) -> tuple[torch.Tensor, dict[str, dict[str, torch.Tensor]]]:
        x0s, conds = [], []
        for _ in range(n):
            still, clip, text = self._clip()
            cond: Conditioned = self.family.encode(still, text, self.frames, self.size)
            conds.append(cond.tensors)
            x0s.append(self._to_model_space(clip))
        merged = {c: {k: torch.cat([d[c][k] for d in conds]) for k in conds[0][c]} for c in CONDITIONS}
        return torch.cat(x0s), merged

    def _to_model_space(self, clip: np.ndarray) -> torch.Tensor:
        dev = self.pipe.unet.device
        x = torch.from_numpy(clip).permute(0, 3, 1, 2).float().to(dev) / 127.5 - 1  # [F, 3, H, W]
        vae = self.pipe.vae
        if vae is None:
            return x[None]
        z = vae.encode(x.to(vae.dtype)).latent_dist.mode() * vae.config.scaling_factor  # [F, c, h, w]
        return z[None].float()


def _images_in(folder: Path) -> list[np.ndarray]:
    from framefleet.media.image import load_image

    if not folder.is_dir():
        raise InputError(f"--data {folder}: not a folder; give a folder of images")
    exts = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
    images = [load_image(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in exts]
    if not images:
        raise InputError(f"--data {folder}: no PNG/JPEG/WebP images in it")
    return images


def denoiser_x0(
    pipe: Any,
    unet: Any,
    space: SigmaSpace,
    x: torch.Tensor,
    sigma: torch.Tensor,
    cond: dict[str, torch.Tensor],
    guidance: torch.Tensor | None,
) -> torch.Tensor:
    """x̂₀ of one (unguided or guidance-input) denoiser call on a batch at noise levels `sigma` [B]."""
    kind = guidance_input_of(unet)
    c = dict(cond)
    if kind == "embed":
        c["guidance"] = guidance if guidance is not None else torch.ones(x.shape[0], 2)
    elif kind == "time_ids":
        g = guidance[:, :1] if guidance is not None else torch.ones(x.shape[0], 1)
        c["ids"] = torch.cat([c["ids"], g.to(c["ids"].dtype)], dim=1)
    inp = x / (sigma.view(-1, *([1] * (x.ndim - 1))) ** 2 + 1).sqrt()
    v = pipe.family.denoise(unet, inp, space.timestep(sigma).to(x.device), c).float()
    return space.x0(x, sigma, v)


def guided_x0(
    pipe: Any,
    unet: Any,
    space: SigmaSpace,
    x: torch.Tensor,
    sigma: torch.Tensor,
    cond: dict[str, dict[str, torch.Tensor]],
    scales: torch.Tensor,
    three_way: bool,
) -> torch.Tensor:
    """The teacher's guided x̂₀ (x̂₀ is affine in v, so guiding x̂₀ equals guiding v)."""
    if guidance_input_of(unet):
        return denoiser_x0(pipe, unet, space, x, sigma, cond["image_text"], scales)
    names = ("uncond", "image", "image_text") if three_way else ("uncond", "image_text")
    b = x.shape[0]
    big = {k: torch.cat([cond[n][k] for n in names]) for k in cond[names[0]]}
    out = denoiser_x0(
        pipe, unet, space, x.repeat(len(names), *([1] * (x.ndim - 1))), sigma.repeat(len(names)), big, None
    )
    parts = dict(zip(names, out.split(b), strict=True))
    s_i = scales[:, 0].view(-1, *([1] * (x.ndim - 1)))
    s_t = scales[:, 1].view(-1, *([1] * (x.ndim - 1)))
    u = parts["uncond"]
    if three_way:
        return u + s_i * (parts["image"] - u) + s_t * (parts["image_text"] - parts["image"])
    return u + s_i * (parts["image_text"] - u)


@dataclass
class RoundState:
    iteration: int
    losses: list[float]


def _checkpoint_path(out: Path, k: int) -> Path:
    return out.parent / f".{out.name}.distill" / f"round-{k}.pt"


def run_round(
    pipe: Any,
    teacher: Any,
    student: Any,
    space: SigmaSpace,
    data: DistillData,
    cfg: DistillConfig,
    steps: tuple[int, int],
    ckpt: Path,
    first: bool,
    show_progress: bool,
) -> RoundState:
    """One halving round: `student` learns one Euler step that equals two of `teacher`'s."""
    from tqdm import tqdm

    coarse = space.sigmas(steps[1])
    mids = midpoints(coarse, space.sigmas(steps[0]))
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    state = RoundState(0, [])
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        student.load_state_dict(saved["student"])
        opt.load_state_dict(saved["opt"])
        state = RoundState(saved["iteration"], saved["losses"])
    three_way = data.family.has_text and bool(data.prompts)
    teacher.requires_grad_(False).eval()
    student.train()
    rng = torch.Generator().manual_seed(cfg.seed * 1000 + steps[1] + state.iteration)
    bar = tqdm(
        total=cfg.iterations,
        initial=state.iteration,
        desc=f"distil {steps[0]}→{steps[1]}",
        unit="it",
        disable=not show_progress,
    )
    while state.iteration < cfg.iterations:
        x0, cond = data.batch(cfg.batch)
        b = x0.shape[0]
        i = torch.randint(0, steps[1], (b,), generator=rng)
        s, s_mid, s_next = coarse[i], mids[i], coarse[i + 1]
        x = x0 + s.view(-1, *([1] * (x0.ndim - 1))) * torch.randn(x0.shape, generator=rng)
        lo_i, hi_i = cfg.guidance_image
        lo_t, hi_t = cfg.guidance_text
        scales = torch.stack(
            [lo_i + (hi_i - lo_i) * torch.rand(b, generator=rng), lo_t + (hi_t - lo_t) * torch.rand(b, generator=rng)],
            dim=1,
        )
        if not cfg.guidance:
            scales = torch.ones(b, 2)
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            if first and cfg.guidance:
                xa = SigmaSpace.step(x, guided_x0(pipe, teacher, space, x, s, cond, scales, three_way), s, s_mid)
                xb = SigmaSpace.step(
                    xa, guided_x0(pipe, teacher, space, xa, s_mid, cond, scales, three_way), s_mid, s_next
                )
            else:
                xa = SigmaSpace.step(x, denoiser_x0(pipe, teacher, space, x, s, cond["image_text"], scales), s, s_mid)
                xb = SigmaSpace.step(
                    xa, denoiser_x0(pipe, teacher, space, xa, s_mid, cond["image_text"], scales), s_mid, s_next
                )
            ratio = (s_next / s).view(-1, *([1] * (x0.ndim - 1)))
            target = (xb - ratio * x) / (1 - ratio)
        pred = denoiser_x0(pipe, student, space, x, s, cond["image_text"], scales if cfg.guidance else None)
        weight = torch.clamp(1 / s**2, min=1.0).view(-1, *([1] * (x0.ndim - 1)))
        loss = (weight * (pred - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        state.iteration += 1
        state.losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(state.losses[-50:]):.4f}")
        if state.iteration % cfg.save_every == 0 or state.iteration == cfg.iterations:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"student": student.state_dict(), "opt": opt.state_dict(), **asdict(state)}, tmp)
            tmp.replace(ckpt)
    bar.close()
    student.eval()
    return state


def distill_model(
    teacher: str, output: str | Path, cfg: DistillConfig, *, show_progress: bool = True
) -> dict[str, Any]:
    """Run every round and write the student folder; returns a report (losses per round, passes)."""
    from framefleet.models.animate.loading import load_pipeline, resolve_model
    from framefleet.models.animate.reference import export_reference

    out = Path(output).expanduser().resolve()
    source = resolve_model(teacher).resolve()
    if out == source:
        raise InputError("-o must be a new folder, not the teacher's")
    rounds = cfg.rounds()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    pipe = load_pipeline(source)
    if guidance_input_of(pipe.unet) and cfg.guidance:
        raise InputError(f"{source.name} is already guidance-distilled; pass --no-guidance to distil its steps only")
    space = SigmaSpace(pipe.scheduler.config)
    data = DistillData(pipe, cfg)
    current = pipe.unet
    report: list[dict[str, Any]] = []
    for k, steps in enumerate(rounds):
        student = make_student(current, cfg.guidance)
        state = run_round(
            pipe, current, student, space, data, cfg, steps, _checkpoint_path(out, k), k == 0, show_progress
        )
        first, last = state.losses[: max(1, len(state.losses) // 10)], state.losses[-max(1, len(state.losses) // 10) :]
        report.append(
            {
                "from_steps": steps[0],
                "to_steps": steps[1],
                "iterations": state.iteration,
                "loss_first": float(np.mean(first)),
                "loss_last": float(np.mean(last)),
            }
        )
        current = student
    meta = {
        "distilled_from": source.name,
        "steps": cfg.student_steps,
        "guidance": cfg.guidance,
        "rounds": report,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("data", "prompts")},
    }
    _export(pipe, current, out, meta, export_reference)
    shutil.rmtree(_checkpoint_path(out, 0).parent, ignore_errors=True)
    passes = cfg.student_steps * (1 if cfg.guidance else len(pipe.conditions_for("x", 1.5, 4.0)))
    return {"output": str(out), "rounds": report, "steps": cfg.student_steps, "passes_per_video": passes}


def _export(pipe: Any, unet: Any, out: Path, meta: dict[str, Any], export_reference: Any) -> None:
    if isinstance(unet, FramefleetVideoUNet):
        export_reference(unet, out, kind="student", meta=meta)
        return
    from framefleet.models.animate.reference import staged_folder

    with staged_folder(out) as tmp:
        teacher_unet = pipe.unet
        pipe.unet = unet
        try:
            pipe.save_pretrained(tmp)
        finally:
            pipe.unet = teacher_unet
        index = json.loads((tmp / "model_index.json").read_text())
        index["_class_name"] = "StableVideoDiffusionPipeline"
        for comp in ("text_encoder", "tokenizer"):
            index.pop(comp, None)
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        (tmp / "framefleet.json").write_text(json.dumps(meta, indent=2) + "\n")


__all__ = [
    "DistillConfig",
    "SigmaSpace",
    "distill_model",
    "guidance_input_of",
    "make_student",
    "midpoints",
    "run_round",
]
