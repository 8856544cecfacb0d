"""What every framefleet command shares: the Typer app, the consoles, one-JSON-object output, the mapping
of errors to a one-line message and an exit code (2: bad input, 1: anything else), and the tables and progress
bars that several commands (and `framefleet demo`) print. A leaf: it imports no command module."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from framefleet.errors import FramefleetError

if TYPE_CHECKING:
    from framefleet.media.ladder import Rung

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="framefleet: AI-generated and AI-enhanced video, served at scale.",
)

# Rich falls back to 80 columns when not on a terminal (make demo | tee log); tables need more.
out = Console() if sys.stdout.isatty() else Console(width=150)
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
T = TypeVar("T")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        import framefleet

        try:
            v = version("framefleet")
        except PackageNotFoundError:  # run from a source tree that was never installed
            v = framefleet.__version__
        sys.stdout.write(f"framefleet {v}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


def emit(payload: dict[str, Any], as_json: bool, render: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
    else:
        render()


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally`, `with` and `except BaseException` cleans up
    exactly as it does for Ctrl-C (scratch folders, orphan blobs, jobs marked failed)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    # Once: a second SIGTERM (a supervisor repeating itself) must not cut the cleanup the first one started.
    signal.signal(signal.SIGTERM, lambda *_: None)
    raise Terminated()


def run(as_json: bool, fn: Callable[[], T]) -> T:
    """Run a command body; turn framefleet errors into one line on stderr (+ JSON) and an exit code."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return fn()
    except FramefleetError as e:
        if as_json:
            sys.stdout.write(json.dumps({"error": e.to_dict()}) + "\n")
        sys.stderr.write(f"error: {' '.join(e.message.split())}\n")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise typer.Exit(130) from None
    except Terminated:
        sys.stderr.write("terminated\n")
        raise typer.Exit(143) from None
    except Exception as e:
        if os.environ.get("FRAMEFLEET_DEBUG"):
            raise
        if as_json:
            sys.stdout.write(json.dumps({"error": {"type": type(e).__name__, "message": str(e)}}) + "\n")
        first = (str(e).strip().splitlines() or [""])[0]
        sys.stderr.write(f"internal error: {type(e).__name__}: {first} (set FRAMEFLEET_DEBUG=1 for a traceback)\n")
        raise typer.Exit(1) from None


@contextmanager
def progress_bars(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """Rich progress bars on stderr, one per label, only for a person at a terminal; yields
    `update(label, done, total)` (None when there is nobody to show them to)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total or None)
            bar.update(tasks[label], completed=done)

        yield update


def variants_table(asset: dict[str, Any], timings: dict[str, float] | None = None) -> Table:
    t = Table(title=f"asset {asset['id']} — {asset['source_name']} ({asset['kind']})", title_justify="left")
    for col in ("variant", "size", "codecs", "fps", "frames", "duration", "bitrate", "bytes"):
        t.add_column(col, justify="left" if col in ("variant", "codecs") else "right")
    if timings is not None:
        t.add_column("encode", justify="right")
    for v in asset["variants"]:
        codecs = "+".join(c for c in (v["video_codec"], v["audio_codec"]) if c)
        row = [
            v["name"],
            f"{v['width']}×{v['height']}",
            codecs,
            f"{v['fps']:.2f}" if v["fps"] else "-",
            str(v["frame_count"]),
            f"{v['duration']:.2f} s" if v["duration"] else "-",
            f"{v['bitrate'] / 1000:.0f} kb/s" if v["bitrate"] else "-",
            f"{v['size_bytes']:,}",
        ]
        if timings is not None:
            secs = timings.get(v["name"].split("-", 1)[-1])
            row.append(f"{secs:.2f} s" if secs is not None else "")
        t.add_row(*row)
    return t


def calibration_line(m: dict[str, Any]) -> str | None:
    """The per-clip blend weights (models/upscale/blend.py) in one line, or None when the run was not calibrated."""
    c = m.get("calibration")
    if not c:
        return None
    base = str(c["baseline"]).capitalize()
    return (
        f"calibrated on the clip: keeps {c['coarse']:.2f} of the model's coarse and {c['fine']:.2f} of its fine "
        f"changes over {base} (one octave down: {c['octave_gain_db']:+.2f} dB over {base}, "
        f"model alone {c['model_gain_db']:+.2f})"
    )


def self_check_line(m: dict[str, Any]) -> str:
    """The enhance self-check in one line: the gain over the baseline (in memory) and what the file loses."""
    baseline = str((m.get("proxy") or {}).get("baseline", "bicubic")).capitalize()  # older variants: bicubic
    line = f"self-check one octave down: VMAF gain over {baseline} {m['gain_vmaf']:+.2f}, PSNR {m['gain_psnr']:+.2f} dB"
    if m.get("mezzanine_loss_psnr") is not None:
        line += (
            f"; the mezzanine file loses {m['mezzanine_loss_psnr']:.3f} dB PSNR, {m['mezzanine_loss_vmaf']:.2f} VMAF"
        )
    return line


def skipped_rungs_note(
    requested: tuple[int, ...] | list[int], skipped: list[int], source_short_side: int
) -> str | None:
    """The human line for ladder rungs that were not made because they are taller than the source (the JSON
    carries them as `skipped_rungs`)."""
    if not skipped:
        return None
    names = ", ".join(f"{r}p" for r in skipped)
    note = f"skipped {names}: above the source's {source_short_side}p (a ladder never upscales; enhance does)"
    if set(skipped) >= set(requested):
        note += f"; made one rendition at the source's own {source_short_side - source_short_side % 2}p instead"
    return note


@contextmanager
def rung_progress(enabled: bool) -> Iterator[Callable[[Rung, int, int], None] | None]:
    """A rich progress bar per rung on stderr, only for a person at a terminal."""
    with progress_bars(enabled) as update:
        yield None if update is None else (lambda rung, done, total: update(f"encode {rung.name}", done, total))
