"""Temporal stability of a stream of outputs: the flow-warped error of Lai et al. ("Learning Blind Video
Temporal Consistency", ECCV 2018), used as the trainer's temporal loss and as the benchmark's measure.

Between consecutive input frames I_{t−1}, I_t the backward flow F (OpenCV DIS on luma: I_t(x) ≈
I_{t−1}(x + F(x))) warps the previous *output* onto the current one. Where the flow is right and nothing was
occluded, a stable look gives the same colour there; the mask M = exp(−α·‖I_t − W(I_{t−1})‖²) (α = 50,
images in [0, 1]) switches off pixels the warp does not explain (occlusions, flow errors, lighting changes):

    E_warp(O_{t−1}, O_t) = Σ_x M(x)·‖O_t(x) − W(O_{t−1})(x)‖² / Σ_x M(x)

A per-frame teacher that flickers with sensor noise scores high; the student that sees its previous output
can score lower than its teacher while still matching its look.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

ALPHA = 50.0

_DIS: dict[int, Any] = {}


def backward_flow(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """[H, W, 2] float32 flow such that cur(x) ≈ prev(x + flow(x)); frames [H, W, 3] uint8 RGB."""
    dis = _DIS.get(0)
    if dis is None:  # one DIS object per process (it is not thread-safe; trainers and benchmarks are single-threaded)
        dis = _DIS[0] = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    g_cur, g_prev = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (cur, prev))
    flow = dis.calc(g_cur, g_prev, None)  # type: ignore[call-overload]
    return np.asarray(flow, np.float32)  # [H, W, 2]


def warp(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `img` [H, W, C] at x + flow(x) (bilinear, replicated borders)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))  # [H, W]
    out = cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out)


def consistency_mask(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """[H, W] float32 in (0, 1]: 1 where the warped previous frame explains the current one."""
    a = cur.astype(np.float32) / 255.0
    b = warp(prev, flow).astype(np.float32) / 255.0
    mask: np.ndarray = np.exp(-alpha * np.square(a - b).sum(axis=2)).astype(np.float32)  # [H, W]
    return mask


def warped_error(out_prev: np.ndarray, out_cur: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """E_warp of two consecutive outputs [H, W, 3] uint8 given the inputs' backward flow and mask."""
    a = out_cur.astype(np.float32) / 255.0
    b = warp(out_prev, flow).astype(np.float32) / 255.0
    return float((mask * np.square(a - b).sum(axis=2)).sum() / max(float(mask.sum()), 1e-6))


def stream_warped_error(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float:
    """Mean E_warp over a stream's consecutive pairs (inputs and outputs [H, W, 3] uint8, same length ≥ 2)."""
    if len(inputs) != len(outputs) or len(inputs) < 2:
        raise ValueError("need two or more frames, as many outputs as inputs")
    errs = []
    for t in range(1, len(inputs)):
        flow = backward_flow(inputs[t - 1], inputs[t])
        mask = consistency_mask(inputs[t - 1], inputs[t], flow)
        errs.append(warped_error(outputs[t - 1], outputs[t], flow, mask))
    return float(np.mean(errs))
