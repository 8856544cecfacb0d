"""`framefleet live ...`: run (a video file through one session) and serve (cameras over WebSocket).

    framefleet live run clip.mp4 --prompt "pencil sketch" --switch-at "2:thermal" -o out.mp4 --json
    framefleet live serve --port 8700            # then open http://127.0.0.1:8700/ in a browser

Both load the shipped model unless `--model DIR` names another folder (live.onnx + live.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from framefleet._cli import JsonOpt, app, emit, out, run
from framefleet.errors import InputError

if TYPE_CHECKING:
    from framefleet.live.engine import LiveEngine

live_app = typer.Typer(no_args_is_help=True, help="A camera stream or a video turned into a prompt-named look.")
app.add_typer(live_app, name="live")

ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="Folder with live.onnx and live.json; default: the shipped model.")
]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, help="ONNX Runtime threads for the model.")]


def load_engine(model: Path | None, threads: int) -> LiveEngine:
    """The model in `model`, or the shipped one; a clear InputError when there is none."""
    from framefleet.live.engine import WEIGHTS_DIR, LiveEngine

    folder = model if model is not None else WEIGHTS_DIR
    if not (folder / "live.onnx").is_file():
        hint = (
            "train one with training/train_live.py (it writes live.onnx and live.json) or pass --model DIR"
            if model is None
            else "pass the folder that holds live.onnx and live.json (as training/train_live.py writes them)"
        )
        raise InputError(f"no live model at {folder}: {hint}")
    return LiveEngine.load(folder, threads=threads)


@live_app.command("run")
def run_cmd(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Video file (MP4, MOV, WebM, ...).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The MP4 to write (H.264).")],
    prompt: Annotated[str, typer.Option("--prompt", help="The look, in words; empty: pass-through.")] = "",
    switch_at: Annotated[
        list[str] | None,
        typer.Option("--switch-at", help="SECONDS:PROMPT: change the prompt from that time on (repeatable)."),
    ] = None,
    model: ModelOpt = None,
    threads: ThreadsOpt = 2,
    as_json: JsonOpt = False,
) -> None:
    """Transform every frame of a video with one live session (history carried frame to frame)."""

    def body() -> dict[str, Any]:
        from framefleet.live.run import parse_switches, run_file

        switches = parse_switches(switch_at or [])
        engine = load_engine(model, threads)
        return run_file(engine, input_path, output, prompt, switches, progress=not as_json)

    report = run(as_json, body)

    def render() -> None:
        lat = report["latency_ms"]
        out.print(
            f"{report['output']}: {report['frames']} frames {report['size'][0]}×{report['size'][1]} in "
            f"{report['wall_s']:.1f} s; model ms p50 {lat['p50']:.1f}, p99 {lat['p99']:.1f}"
        )
        for p in report["prompts"]:
            look = f" → {p['look']}" if p["look"] else ""
            out.print(f"  from frame {p['from_frame']} ({p['from_s']:.2f} s): {p['prompt'][:80]!r}{look}")

    emit(report, as_json, render)


@live_app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Bind address (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    model: ModelOpt = None,
    max_sessions: Annotated[int, typer.Option("--max-sessions", min=1, help="Streams at once; more are refused.")] = 2,
    threads: ThreadsOpt = 2,
) -> None:
    """Serve the browser page at / and the WebSocket stream at /v1/live until Ctrl-C (see docs/live.md)."""

    def body() -> None:
        import uvicorn

        from framefleet.live.server import create_app

        if not 1 <= port <= 65535:
            raise InputError(f"--port {port}: give 1 to 65535")
        engine = load_engine(model, threads)
        server_app = create_app(engine, max_sessions=max_sessions)
        out.print(f"live: http://{host}:{port}/ (WebSocket /v1/live, metrics /metrics), model {engine.path}")
        uvicorn.run(server_app, host=host, port=port, log_level="warning", ws_max_size=16 * 1024 * 1024)

    run(False, body)
