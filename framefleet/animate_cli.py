"""`framefleet animate` and `framefleet distill`.

framefleet animate IMAGE [--prompt TEXT] [--model student|teacher|PATH] [--sampler dpmpp|euler|ddim]
                   [--steps N] [--guidance-image S] [--guidance-text S] [--frames N] [--fps N] [--seed N]
                   [--bf16/--no-bf16] [--compile] [--shared-context/--plain-attention] -o OUT.mp4 [--json]
framefleet distill TEACHER_DIR -o STUDENT_DIR [--guidance/--no-guidance] [--steps 8] [--iterations N]
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from framefleet._cli import JsonOpt, app, emit, out, progress_bars, run
from framefleet.config import Settings
from framefleet.store import Store


@app.command()
def animate(
    image: Annotated[str, typer.Argument(help="An image file (ingested first) or an image asset id.")],
    prompt: Annotated[str, typer.Option(help="The motion, in words: 'pan left', 'zoom in slowly', ...")] = "",
    model: Annotated[str, typer.Option(help="student, teacher, or a diffusers folder (SVD family too).")] = "student",
    sampler: Annotated[str | None, typer.Option(help="dpmpp, euler or ddim. Default: the model's own.")] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps. Default: 8 (student), 32 (others).")] = None,
    guidance_image: Annotated[float, typer.Option(help="Image guidance scale s_I (1 = none).")] = 1.5,
    guidance_text: Annotated[float, typer.Option(help="Text guidance scale s_T (1 = none).")] = 4.0,
    frames: Annotated[int | None, typer.Option(help="Frames to make. Default: the model's.")] = None,
    fps: Annotated[int, typer.Option(help="Frame rate of the video file.")] = 8,
    seed: Annotated[int, typer.Option(help="Noise seed (part of the variant's identity).")] = 0,
    bf16: Annotated[bool, typer.Option("--bf16/--no-bf16", help="bfloat16 autocast.")] = False,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile each component.")] = False,
    shared_context: Annotated[
        bool, typer.Option("--shared-context/--plain-attention", help="Cross-attention K/V once per video.")
    ] = True,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Render again even if this variant exists.")] = False,
    output: Annotated[str | None, typer.Option("-o", "--output", help="Also write the video here (.mp4).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a still image (and a prompt) into a short video, stored as a variant of the image's asset."""
    from framefleet.store.views import variant_dict
    from framefleet.tasks.animate import AnimateRequest
    from framefleet.tasks.animate import animate as do_animate

    def body() -> None:
        settings = Settings.from_env()
        request = AnimateRequest(
            prompt=prompt,
            model=model,
            sampler=sampler,
            steps=steps,
            guidance_image=guidance_image,
            guidance_text=guidance_text,
            frames=frames,
            fps=fps,
            seed=seed,
            bf16=bf16,
            compile=compile_,
            shared_context=shared_context,
            device=device,
            force=force,
        )
        request.check()  # before the store is opened: a bad option touches nothing
        store = Store.open(settings)
        with progress_bars(not as_json) as update:
            tick = None if update is None else (lambda done, total: update("denoise (steps)", done, total))
            r = do_animate(store, image, request, settings=settings, output=output, progress=tick)
        payload: dict[str, Any] = {
            "output": str(r.output),
            "asset_id": r.asset.id,
            "variant": variant_dict(r.variant),
            "created": r.created,
            "model": r.model,
            "sampler": r.sampler,
            "steps": r.steps,
            "denoiser_passes": r.denoiser_passes,
            "seconds": round(r.seconds, 3),
            "timings": {k: round(v, 3) for k, v in r.timings.items()},
            "frames": r.frames,
            "fps": r.fps,
        }
        emit(payload, as_json, lambda: _render(payload))

    run(as_json, body)


def _render(p: dict[str, Any]) -> None:
    v = p["variant"]
    out.print(
        f"{'new' if p['created'] else 'existing'} variant {v['id']} of asset {p['asset_id']}: {p['frames']} frames "
        f"{v['width']}×{v['height']} at {p['fps']} fps, {p['model']} {p['sampler']} × {p['steps']} steps "
        f"= {p['denoiser_passes']} denoiser passes"
    )
    out.print(f"→ {p['output']}  ({p['seconds']:.1f} s)")


@app.command()
def distill(
    teacher: Annotated[str, typer.Argument(help="The teacher: student, teacher, or a diffusers folder.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The student's diffusers folder.")],
    guidance: Annotated[bool, typer.Option("--guidance/--no-guidance", help="Distil the guidance too.")] = True,
    steps: Annotated[int, typer.Option(help="The student's sampling steps (halved from --teacher-steps).")] = 8,
    teacher_steps: Annotated[int, typer.Option(help="The teacher's DDIM steps.")] = 32,
    iterations: Annotated[int, typer.Option(help="Training iterations per halving round.")] = 1000,
    batch: Annotated[int, typer.Option(help="Clips per iteration.")] = 4,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-4,
    data: Annotated[str | None, typer.Option(help="A folder of images to distil on (default: our photos).")] = None,
    prompts: Annotated[str | None, typer.Option(help="A text file, one prompt a line (default: ours).")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Distil a teacher into a student: guidance (3 passes → 1) and steps (halving rounds), resumable."""
    from framefleet.models.animate.distill import DistillConfig, distill_model

    def body() -> None:
        cfg = DistillConfig(
            guidance=guidance,
            student_steps=steps,
            teacher_steps=teacher_steps,
            iterations=iterations,
            batch=batch,
            lr=lr,
            data=data,
            prompts=prompts,
            seed=seed,
        )
        report = distill_model(teacher, output, cfg, show_progress=not as_json)
        emit(report, as_json, lambda: out.print(_distill_line(report)))

    run(as_json, body)


def _distill_line(r: dict[str, Any]) -> str:
    rounds = ", ".join(
        f"{x['from_steps']}→{x['to_steps']}: loss {x['loss_first']:.4f}→{x['loss_last']:.4f}" for x in r["rounds"]
    )
    return f"student → {r['output']} ({rounds}); {r['passes_per_video']} denoiser passes per video"
