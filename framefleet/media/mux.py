"""Put a source's audio next to a processed video, without touching either.

    from framefleet.media.mux import mux_audio
    mux_audio("enhanced-video-only.mp4", "original.mp4", "enhanced.mp4")

Video packets are copied as they are; the first audio stream of the source is copied packet for
packet when MP4 can carry it (re-encoded to AAC otherwise, as `transcode` does). Packets from the two
files are interleaved by time so the muxer never buffers a whole stream.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from framefleet.errors import InputError
from framefleet.media.encode import _AudioPath
from framefleet.media.probe import check_file, open_input, open_output


def _timed(packets: Iterator[Any], order: int) -> Iterator[tuple[float, int, int, Any]]:
    for i, pkt in enumerate(packets):
        ts = pkt.dts if pkt.dts is not None else pkt.pts
        t = float(ts * pkt.time_base) if ts is not None else float("inf")  # flush packets go last
        yield t, order, i, pkt


def mux_audio(video: str | Path, audio_from: str | Path, dst: str | Path, *, audio_kbps: int = 128) -> bool:
    """Write `dst` = `video`'s video stream + `audio_from`'s first audio stream. Returns whether there was
    audio to carry. `dst` is written directly: pass a temporary path when it must appear atomically."""
    vpath, apath = check_file(video), check_file(audio_from)
    with open_input(vpath) as vin, open_input(apath) as ain:
        if not vin.streams.video:
            raise InputError(f"{vpath}: has no video stream")
        with open_output(dst, f"muxing audio from {apath.name} into {vpath.name} failed") as out:
            vs = vin.streams.video[0]
            ov = out.add_stream_from_template(vs)
            audio = _AudioPath(ain, out, audio_kbps)
            out.start_encoding()
            sources = [_timed(vin.demux(vs), 0)]
            if audio.src is not None:
                sources.append(_timed(ain.demux(audio.src), 1))
            for _, order, _, pkt in heapq.merge(*sources, key=lambda item: (item[0], item[1], item[2])):
                if order == 1:
                    audio.handle(pkt, out)
                elif pkt.dts is not None:
                    pkt.stream = ov
                    out.mux(pkt)
    return audio.src is not None
