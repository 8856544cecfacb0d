"""Worker pools for the campaign runner. `LocalPool`: threads in this process (small runs, tests); the Ray
pool is in `ray_pool`, the only campaign module that imports ray."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from framefleet.campaign.work import RecipientRenderer


class LocalPool:
    """One thread per worker, each with its own `RecipientRenderer` (built by `make(worker_name)`)."""

    def __init__(self, workers: int, make: Callable[[str], RecipientRenderer]) -> None:
        self.workers = [f"local-{i}" for i in range(workers)]
        self._renderers = {w: make(w) for w in self.workers}
        self._executors = {w: cf.ThreadPoolExecutor(max_workers=1) for w in self.workers}
        self._futures: dict[Hashable, cf.Future[dict[str, Any]]] = {}
        self._ids = itertools.count()

    def submit(self, worker: str, recipient: str) -> Hashable:
        handle = next(self._ids)
        self._futures[handle] = self._executors[worker].submit(self._renderers[worker], recipient)
        return handle

    def wait(self, handles: Sequence[Hashable], timeout: float) -> list[tuple[Hashable, dict[str, Any] | str]]:
        futures = {self._futures[h]: h for h in handles if h in self._futures}
        done, _ = cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[tuple[Hashable, dict[str, Any] | str]] = []
        for fut in done:
            handle = futures[fut]
            self._futures.pop(handle, None)
            err = fut.exception()
            out.append((handle, f"{type(err).__name__}: {err}" if err is not None else fut.result()))
        return out

    def cancel(self, handle: Hashable) -> None:
        fut = self._futures.pop(handle, None)
        if fut is not None:
            fut.cancel()  # a render already running finishes; its result is ignored

    def retire(self, worker: str) -> None:
        self._executors[worker].shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        for ex in self._executors.values():
            ex.shutdown(wait=False, cancel_futures=True)
