"""A served process that must not outlive the fleet that started it.

`framefleet serve` stops its gateway and workers on Ctrl-C and SIGTERM. A SIGKILL (or a crash) of the parent
runs no handler at all, and the children, each in its own session so a terminal's Ctrl-C reaches only the
parent, would keep answering on their ports. So each child watches its parent: when the parent is gone
(the child is re-parented), it sends itself SIGTERM, and uvicorn shuts down as it does on Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
import time


def exit_with_parent(expected_parent: int | None, period_s: float = 1.0) -> None:
    """Start a daemon thread that SIGTERMs this process once its parent is no longer `expected_parent`."""
    if not expected_parent:
        return

    def watch() -> None:
        while os.getppid() == expected_parent:
            time.sleep(period_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def watch_parent_from_env() -> None:
    """`FRAMEFLEET_PARENT_PID`, set by fleet/local.py for the processes it starts."""
    exit_with_parent(int(os.environ.get("FRAMEFLEET_PARENT_PID", "0") or 0))


__all__ = ["exit_with_parent", "watch_parent_from_env"]
