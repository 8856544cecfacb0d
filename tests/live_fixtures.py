"""A tiny seeded live model of the real class, exported to ONNX as the shipped one is (as diffusers' tests'
get_dummy_components do): every parameter random so that the output depends on the frame, the history and
the prompt, with a larger spread on the FiLM layers so that prompts give visibly different looks.

Its looks are noisy at the pixel level (random 4×4 PixelShuffle heads), which JPEG cannot keep: tests compare
images at ¼ size (`coarse`), where the JPEG round trip of a result costs about 3 levels."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def tiny_live_model(folder: Path, seed: int = 0) -> Path:
    """Write `folder`/live.onnx and live.json (no named looks); returns `folder`."""
    import torch
    from torch import nn

    from framefleet.models.live.net import LiveNet, export_onnx

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    net = LiveNet(width=8, mid_width=16, blocks=(1, 1, 1))
    with torch.no_grad():  # zero-initialised layers would make the net an identity
        for p in net.parameters():
            nn.init.normal_(p, std=0.05)
        first, last = net.film[0], net.film[-1]
        assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
        nn.init.normal_(first.weight, std=0.5)  # prompts' embeddings are small: spread them in the hidden layer
        nn.init.normal_(last.weight, std=0.5)
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(net.eval(), folder / "live.onnx", 64)
    (folder / "live.json").write_text(json.dumps({"looks": {}}))
    return folder


def coarse(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] → [H/4, W/4, 3] float32, area-averaged: what survives JPEG of the tiny model's looks."""
    import cv2

    h, w = image.shape[:2]
    return np.asarray(cv2.resize(image.astype(np.float32), (w // 4, h // 4), interpolation=cv2.INTER_AREA))


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A [H, W, 3] uint8 frame of one colour (size is W, H) with a light gradient, so that it is not flat."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = colour
    ramp = np.linspace(0, 24, w, dtype=np.float32)[None, :, None]
    return np.clip(img.astype(np.float32) + ramp, 0, 255).astype(np.uint8)


def write_y4m(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    """A YUV4MPEG2 file of RGB frames as I420 (what Chromium's fake camera plays): even sides required."""
    import cv2

    h, w = frames[0].shape[:2]
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


class LiveServer:
    """uvicorn serving `app` on a free loopback port, in a thread of this process (so tests read its metrics)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"live-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/live"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
