"""The live runtime: the shipped student on ONNX Runtime, prompts turned into embeddings, one stream's state.

    engine = LiveEngine.load()                      # the shipped model (framefleet/models/live/weights)
    session = engine.session("pencil sketch")
    out, ms = session.step(frame)                   # [H, W, 3] uint8 RGB → [H, W, 3] uint8, model ms
    session.set_prompt("warm sunset grade")         # takes effect on the next frame

Prompts: a prompt's MiniLM sentence embedding (the animate models' encoder, offline) is matched against the
phrasings each look was trained on, so any phrasing reaches the look nearest in meaning (`PromptEncoder`,
`engine.encode.match(prompt)` says which); the tokenizer keeps the first 64 tokens (a 10,000-character
prompt is cut there, not refused). An empty prompt, or one near no look, is the zero embedding, which the
net was trained to treat as "no look": the frame passes through. `blend` mixes the conditioning of two
prompts, which blends their looks.

Frames: any size from `MIN_SIDE` to `MAX_SIDE` per side; the net pads to a multiple of 8 and crops back.
When a stream's frame size changes, its history restarts (cold start), since the previous output no longer
lines up with the frame.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from framefleet.errors import InputError
from framefleet.models.live.net import COND_DIM, OnnxLive, pad_to_multiple, to_hwc, to_nchw

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "models" / "live" / "weights"
MIN_SIDE = 16
MAX_SIDE = 1280
MAX_PROMPT_CHARS = 10_000  # longer prompts are cut here before tokenizing (the tokenizer keeps 64 tokens anyway)


@dataclass(frozen=True)
class LookMatch:
    """What a prompt selects: the trained looks it is conditioned on, by weight (empty: no look)."""

    weights: dict[str, float]
    similarity: float  # cosine between the prompt and the nearest phrasing the model was trained on

    @property
    def look(self) -> str | None:
        return max(self.weights, key=lambda n: self.weights[n]) if self.weights else None


class PromptEncoder:
    """Prompts → the conditioning vector, through the MiniLM embedding; cached (a stream switches among a few
    prompts). Thread-safe.

    With a look table (the shipped model's live.json: per look its canonical prompt, its embedding and the
    phrasings it was trained on), a prompt is matched in embedding space: its cosine similarity to each look
    is the best over that look's phrasings; the looks within `MARGIN` of the best one share the conditioning
    by a softmax at temperature `TEMPERATURE`, as a blend of their canonical embeddings; below `FLOOR` no look
    matches and the frames pass through. Why not feed the raw embedding: the net saw four phrasings per look,
    so a new phrasing's raw embedding lies off what it learned and lands between looks (measured in
    benchmarks/live_benchmarks.py: "held-out phrasing", raw and matched). Without a table (a model trained
    by a user without one) the raw embedding is the conditioning."""

    TEMPERATURE = 0.02
    MARGIN = 0.05
    FLOOR = 0.35

    def __init__(self, looks: dict[str, Any] | None = None) -> None:
        self._looks = dict(looks or {})
        self._canonical = {n: _frozen(np.asarray(v["embedding"])) for n, v in self._looks.items()}
        self._cache: dict[str, np.ndarray] = {v["prompt"]: self._canonical[n] for n, v in self._looks.items()}
        self._matches: dict[str, LookMatch] = {v["prompt"]: LookMatch({n: 1.0}, 1.0) for n, v in self._looks.items()}
        self._phrasings: list[tuple[str, np.ndarray]] | None = None  # (look, unit embedding), made on first need
        self._lock = threading.RLock()
        self._model: tuple[Any, Any] | None = None

    def __call__(self, prompt: str) -> np.ndarray:
        """[384] float32, read-only (cached: shared by every caller); the zero vector when no look is meant."""
        if not self._looks:
            return self.embed(prompt)
        m = self.match(prompt)
        if not m.weights:
            return np.zeros(COND_DIM, np.float32)
        return _frozen(np.sum([w * self._canonical[n] for n, w in m.weights.items()], axis=0))  # [384]

    def match(self, prompt: str) -> LookMatch:
        """The looks `prompt` selects (module docstring of the class); an empty prompt selects none."""
        text = _clean(prompt)
        if not text or not self._looks:
            return LookMatch({}, 0.0)
        with self._lock:
            hit = self._matches.get(text)
            if hit is not None:
                return hit
            e = self.embed(text)
            e = e / max(float(np.linalg.norm(e)), 1e-8)
            best: dict[str, float] = {}
            for name, v in self._phrasing_vectors():
                best[name] = max(best.get(name, -1.0), float(v @ e))
            top = max(best.values())
            near = {n: s for n, s in best.items() if s >= max(self.FLOOR, top - self.MARGIN)}
            z = {n: np.exp((s - top) / self.TEMPERATURE) for n, s in near.items()}
            total = sum(z.values())
            m = LookMatch({n: round(float(v / total), 4) for n, v in z.items()}, round(top, 4))
            if len(self._matches) < 1024:
                self._matches[text] = m
            return m

    def embed(self, prompt: str) -> np.ndarray:
        """The raw MiniLM embedding [384] (read-only); the zero vector for an empty prompt."""
        text = _clean(prompt)
        if not text:
            return np.zeros(COND_DIM, np.float32)
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                return hit
            vec = _frozen(self._minilm([text])[0])  # [384]
            if len(self._cache) < 1024:
                self._cache[text] = vec
            return vec

    def _minilm(self, texts: list[str]) -> np.ndarray:
        from framefleet.models.animate.text import embed_prompts, load_minilm

        if self._model is None:
            self._model = load_minilm()
        return np.asarray(embed_prompts(*self._model, texts).numpy(), np.float32)  # [N, 384]

    def _phrasing_vectors(self) -> list[tuple[str, np.ndarray]]:
        if self._phrasings is None:
            pairs = [
                (n, t) for n, v in self._looks.items() for t in dict.fromkeys([v["prompt"], *v.get("phrasings", [])])
            ]
            vecs = self._minilm([t for _, t in pairs])  # [P, 384]
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-8)
            self._phrasings = [(n, v) for (n, _), v in zip(pairs, vecs, strict=True)]
        return self._phrasings


def _clean(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise InputError(f"a prompt must be text, got {type(prompt).__name__}")
    return " ".join(prompt[:MAX_PROMPT_CHARS].split())


def _frozen(vec: np.ndarray) -> np.ndarray:
    out = np.array(vec, np.float32)  # a copy: the caller's array stays theirs
    out.setflags(write=False)
    return out


@dataclass
class LiveSession:
    """One stream: its prompt embedding and the previous output it feeds back (float, padded size)."""

    engine: LiveEngine
    cond: np.ndarray  # [1, 384]
    prompt: str = ""
    frames: int = 0
    _prev_out: np.ndarray | None = field(default=None, repr=False)  # [1, 3, H', W']
    _prev_in: np.ndarray | None = field(default=None, repr=False)

    def set_prompt(self, prompt: str) -> None:
        self.cond = self.engine.encode(prompt).reshape(1, -1)
        self.prompt = prompt

    def set_cond(self, cond: np.ndarray, label: str) -> None:
        self.cond = np.asarray(cond, np.float32).reshape(1, -1)
        self.prompt = label

    def reset(self) -> None:
        self._prev_out = self._prev_in = None

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """[H, W, 3] uint8 RGB → ([H, W, 3] uint8, milliseconds in the model)."""
        check_frame(frame)
        x, (h, w) = pad_to_multiple(to_nchw(frame))  # [1, 3, H', W']
        if self._prev_out is None or self._prev_out.shape != x.shape:
            self._prev_out, self._prev_in = x, x  # cold start: the frame is its own previous output
        with self.engine.model_lock:  # the wait for another stream's step is not model time
            t0 = time.perf_counter()
            out = self.engine.runner.step(self._prev_out, x, self.cond, self._prev_in)  # [1, 3, H', W']
            ms = (time.perf_counter() - t0) * 1e3
        self._prev_out, self._prev_in = out, x
        self.frames += 1
        return to_hwc(out[:, :, :h, :w]), ms


def check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InputError(f"a frame must be an H×W×3 uint8 RGB image, got {got}")
    h, w = frame.shape[:2]
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise InputError(f"frame {w}×{h}: each side must be {MIN_SIDE}–{MAX_SIDE} px; scale it before sending")


class LiveEngine:
    """The model (ONNX Runtime session, shared by every stream of a process) and the prompt encoder."""

    def __init__(self, onnx_path: str | Path, looks: dict[str, Any] | None = None, threads: int = 2) -> None:
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise InputError(f"no live model at {self.path}: pass the folder holding live.onnx and live.json")
        self.runner = OnnxLive(self.path, threads=threads)
        self.looks = looks or {}
        self.encode = PromptEncoder(self.looks)
        self.threads = threads
        # One model step at a time per process: each step already uses every ONNX Runtime thread, and
        # concurrent steps from several streams would oversubscribe the cores (slower and jittery).
        self.model_lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | Path | None = None, threads: int = 2) -> LiveEngine:
        """The model in `folder` (live.onnx + live.json), by default the shipped one."""
        root = Path(folder) if folder is not None else WEIGHTS_DIR
        meta = root / "live.json"
        looks = json.loads(meta.read_text())["looks"] if meta.is_file() else {}
        return cls(root / "live.onnx", looks, threads)

    def session(self, prompt: str = "") -> LiveSession:
        return LiveSession(self, self.encode(prompt).reshape(1, -1), prompt)

    def blend(self, a: str, b: str, t: float) -> np.ndarray:
        """The embedding (1 − t)·e(a) + t·e(b): the looks blend with it."""
        if not 0.0 <= t <= 1.0:
            raise InputError(f"a blend weight must be in [0, 1], got {t}")
        return ((1 - t) * self.encode(a) + t * self.encode(b)).astype(np.float32)
