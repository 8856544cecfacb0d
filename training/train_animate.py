"""Train the reference image-to-video teacher (FramefleetVideoUNet, ~6 M parameters) on real photographs
animated with procedural camera motion (framefleet.models.animate.motion), prompts encoded by MiniLM.

Objective: DDPM v-prediction, cosine schedule (1000 steps), conditioning dropout for three-way guidance
(InstructPix2Pix): 10% of clips lose the text, 5% lose text and image. EMA of the weights is what ships.
Resumable: a checkpoint (model, EMA, optimiser, step, RNG) every --save-every steps; run the same command
again to continue. --minutes stops cleanly (checkpoint + export) when the time is up.

Camera path: the denoiser renders each clip along the path it was drawn with (teacher forcing) while the
camera-path head learns to predict that path from the prompt (see FramefleetVideoUNet's docstring).

The shipped teacher came from these commands (2 cores; --minutes stops cleanly, the same command resumes):
    # steps 0-5,700, the first design (static still, no heads): training/resume/teacher, removed after
    # commit 4e3b530 (git show 4e3b530:training/resume/teacher/... brings it back)
    .venv/bin/python training/train_animate.py --init training/resume/teacher --minutes 80 --threads 2 \
        --run training/runs/teacher-path           # camera-path head added; stopped at step 6,076 (ckpt 6,000)
    .venv/bin/python training/train_animate.py --minutes 75 --threads 2 --run training/runs/teacher-path
                                                   # pixel head added (zero-initialised): steps 6,000-7,922
    .venv/bin/python training/train_animate.py --export-only --fit-path-head --run training/runs/teacher-path
    -> framefleet/models/animate/weights/teacher (diffusers folder, fp16; the head refitted on the whole
       training vocabulary, whichever of raw and EMA weights has the lower validation loss)
On a new machine (no checkpoint), continue from the shipped weights (the step count comes from its
framefleet.json; Adam starts afresh):
    .venv/bin/python training/train_animate.py --init framefleet/models/animate/weights/teacher --minutes 60
The student (~20 minutes on 2 cores; its framefleet.json records the rounds and losses):
    .venv/bin/framefleet distill teacher -o framefleet/models/animate/weights/student --guidance --steps 8 \
        --teacher-steps 32 --iterations 200 --batch 4 --lr 1e-4
    (round 1 was started with --iterations 300, stopped after its 200-iteration checkpoint and resumed
    with 200: the same run as the command above)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from framefleet.models.animate import motion
from framefleet.models.animate.reference import REFERENCE_DIR, export_reference, noise_scheduler
from framefleet.models.animate.text import embed_prompts, load_minilm
from framefleet.models.animate.unet import PATH_UNITS, FramefleetVideoUNet

ROOT = Path(__file__).resolve().parent
# parts added to the architecture after the first teacher run; a checkpoint without them still resumes
NEW_PARTS = ("path_head.", "pixel_head.")


class ClipSampler:
    """Random (clip, still, prompt embedding) batches from the training photographs."""

    def __init__(self, seed: int, frames: int = 8, size: int = 64) -> None:
        self.photos = list(motion.photographs("train").values())
        self.prompts = motion.train_prompts()
        texts = sorted({p for v in self.prompts.values() for p, _ in v})
        tok, enc = load_minilm()
        self.embeds = dict(zip(texts, embed_prompts(tok, enc, texts), strict=True))
        self.rng = np.random.default_rng(seed)
        self.frames, self.size = frames, size

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clips [B, F, 3, H, W] in [-1, 1], stills [B, 3, H, W], prompt embeddings [B, 384], the camera
        paths the clips were drawn with [B, 4])."""
        clips, texts, paths = [], [], []
        for _ in range(n):
            kind = motion.MOTIONS[self.rng.integers(len(motion.MOTIONS))]
            text, speed = self.prompts[kind][self.rng.integers(len(self.prompts[kind]))]
            photo = self.photos[self.rng.integers(len(self.photos))]
            near = self.photos[self.rng.integers(len(self.photos))]
            if self.rng.random() < 0.5:
                photo = photo[:, ::-1]
            spec = motion.ClipSpec(kind, speed, self.frames, self.size)
            clip, path = motion.render_clip_with_path(np.ascontiguousarray(photo), spec, self.rng, near=near)
            clips.append(clip)
            texts.append(text)
            paths.append((path.vx, path.vy, path.log_zoom, path.spin))
        x = torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).float() / 127.5 - 1  # [B, F, 3, H, W]
        e = torch.stack([self.embeds[t] for t in texts])  # [B, 384]
        return x, x[:, 0].clone(), e, torch.tensor(paths, dtype=torch.float32)


def drop_conditions(image: torch.Tensor, text: torch.Tensor, path: torch.Tensor, rng: np.random.Generator) -> None:
    """In place: 10% lose the text, 5% lose text and image (the three guidance passes' conditions). A clip
    without its prompt is rendered from an unmoving still, as at sampling time (no text, no camera path)."""
    for i in range(image.shape[0]):
        u = rng.random()
        if u < 0.15:
            text[i] = 0
            path[i] = 0
        if u < 0.05:
            image[i] = 0


def path_loss(net: FramefleetVideoUNet, text: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
    """Camera-path head error in its own units (typical speeds ≈ 1), over clips that keep their prompt."""
    keep = text.abs().sum(-1) > 0
    units = torch.tensor(PATH_UNITS)
    return F.mse_loss(net.predict_camera_path(text[keep]) / units, path[keep] / units)


@torch.no_grad()
def validation_loss(net: FramefleetVideoUNet, seed: int, batches: int = 6) -> float:
    """v-prediction loss on fresh clips (own seed, fixed noise and timesteps), to choose what ships."""
    sampler = ClipSampler(10_000 + seed)
    g = torch.Generator().manual_seed(seed)
    alphas = noise_scheduler().alphas_cumprod
    losses = []
    net.eval()
    for _ in range(batches):
        x0, image, text, _ = sampler.batch(8)
        t = torch.randint(0, 1000, (8,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = alphas[t].sqrt().view(-1, 1, 1, 1, 1)
        s = (1 - alphas[t]).sqrt().view(-1, 1, 1, 1, 1)
        losses.append(float(F.mse_loss(net(a * x0 + s * noise, t, image, text), a * noise - s * x0)))
    return float(np.mean(losses))


def fit_path_head(net: FramefleetVideoUNet, seed: int, iterations: int = 3000) -> float:
    """Fit the camera-path head afresh on the whole training vocabulary (text alone: seconds), with each
    prompt's speed jittered as the clips' is. Returns the final loss in head units."""
    prompts = motion.train_prompts()
    items = [(text, kind, speed) for kind, v in prompts.items() for text, speed in v]
    tok, enc = load_minilm()
    embeds = embed_prompts(tok, enc, [t for t, _, _ in items])  # [N, 384]
    assert net.path_head is not None
    for layer in net.path_head:
        if isinstance(layer, torch.nn.Linear):
            layer.reset_parameters()
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(net.path_head.parameters(), lr=1e-3, weight_decay=0.5)
    units = torch.tensor(PATH_UNITS)
    net.train()
    loss = torch.zeros(())
    for _ in tqdm(range(iterations), desc="camera-path head", unit="it"):
        idx = rng.integers(len(items), size=256)
        target = []
        for i in idx:
            p = motion.camera_path(items[i][1], items[i][2] * rng.uniform(0.8, 1.2))
            target.append((p.vx, p.vy, p.log_zoom, p.spin))
        y = torch.tensor(target, dtype=torch.float32) / units  # [256, 4]
        loss = F.mse_loss(net.predict_camera_path(embeds[idx]) / units, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    return float(loss.detach())


def pick_weights(model: FramefleetVideoUNet, ema: FramefleetVideoUNet, seed: int) -> FramefleetVideoUNet:
    """The EMA lags a model that is still improving fast; ship whichever has the lower validation loss."""
    raw, avg = validation_loss(model, seed), validation_loss(ema, seed)
    print(f"validation loss: raw {raw:.4f}, EMA {avg:.4f} -> shipping {'EMA' if avg <= raw else 'raw'}")
    return ema if avg <= raw else model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default=str(ROOT / "runs" / "teacher"))
    ap.add_argument("--out", default=str(REFERENCE_DIR / "teacher"))
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument(
        "--fit-path-head",
        action="store_true",
        help="with --export-only: refit the camera-path head on the whole training vocabulary before export",
    )
    ap.add_argument(
        "--init",
        default=None,
        help="with no checkpoint in --run: start from this diffusers folder's unet (e.g. the shipped teacher)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "ckpt.pt"
    torch.manual_seed(args.seed)
    model = FramefleetVideoUNet(camera_path=True, pixel_head_channels=32)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    step, losses = 0, []
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        ema.load_state_dict(state["ema"], strict=False)
        if unexpected or any(not k.startswith(NEW_PARTS) for k in missing):
            raise SystemExit(f"{ckpt} does not fit this model: {missing + unexpected}")
        if missing:  # a checkpoint from before a part was added: the part starts fresh, so does Adam
            print(f"new parts start fresh: {sorted({k.split('.')[0] for k in missing})}")
        else:
            opt.load_state_dict(state["opt"])
        step, losses = state["step"], state["losses"]
        print(f"resumed at step {step}")
    elif args.init:
        # a new machine has no checkpoint (training/runs is not in git): continue from shipped weights;
        # the optimiser state starts afresh, the step count from the folder's record
        init = FramefleetVideoUNet.from_pretrained(Path(args.init) / "unet", torch_dtype=torch.float32)
        # strict=False: a folder from before the camera-path head and the pixel head lacks them
        missing, unexpected = model.load_state_dict(init.state_dict(), strict=False)
        if unexpected or any(not k.startswith(NEW_PARTS) for k in missing):
            raise SystemExit(f"{args.init} is not a FramefleetVideoUNet of this shape: {missing + unexpected}")
        ema.load_state_dict(model.state_dict())
        meta = Path(args.init) / "framefleet.json"
        step = int(json.loads(meta.read_text()).get("step", 0)) if meta.is_file() else 0
        print(f"initialised from {args.init} (step {step})")
    if args.export_only:
        chosen = pick_weights(model, ema, args.seed)
        if args.fit_path_head:
            print(f"camera-path head refitted: loss {fit_path_head(chosen, args.seed):.4f}")
        export_reference(chosen, Path(args.out), kind="teacher", meta={"step": step})
        return
    sampler = ClipSampler(args.seed + step)
    sched = noise_scheduler()
    alphas = sched.alphas_cumprod  # [1000]
    start = time.monotonic()
    path_losses: list[float] = []
    bar = tqdm(total=args.steps, initial=step, desc="teacher", unit="step")

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        state = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict()}
        torch.save({**state, "step": step, "losses": losses}, tmp)
        tmp.replace(ckpt)

    while step < args.steps:
        x0, image, text, path = sampler.batch(args.batch)
        drop_conditions(image, text, path, sampler.rng)
        t = torch.randint(0, 1000, (x0.shape[0],))
        noise = torch.randn_like(x0)
        a = alphas[t].sqrt().view(-1, 1, 1, 1, 1)
        s = (1 - alphas[t]).sqrt().view(-1, 1, 1, 1, 1)
        xt = a * x0 + s * noise
        v = a * noise - s * x0
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 200)
        # the denoiser renders along the clip's true path (teacher forcing); the head learns to predict it
        loss_v = F.mse_loss(model(xt, t, image, text, camera_path=path), v)
        loss_path = path_loss(model, text, path)
        loss = loss_v + loss_path
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
        step += 1
        losses.append(float(loss_v.detach()))
        path_losses.append(float(loss_path.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}", path=f"{np.mean(path_losses[-100:]):.3f}")
        out_of_time = args.minutes is not None and time.monotonic() - start > args.minutes * 60
        if step % args.save_every == 0 or out_of_time or step == args.steps:
            save()
        if step % 500 == 0 or out_of_time or step == args.steps:
            export_reference(ema, Path(args.out), kind="teacher", meta={"step": step})
        if out_of_time:
            break
    bar.close()
    print(f"step {step}: loss (last 100) {np.mean(losses[-100:]):.4f}; first 100 {np.mean(losses[:100]):.4f}")


if __name__ == "__main__":
    main()
