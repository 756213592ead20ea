"""Run blob transfers side by side; the first failure (or Ctrl-C) stops the rest.

Each task receives a ``threading.Event`` and calls :func:`check` on it between
chunks; once set, the task raises :class:`Cancelled` and its temp file is
discarded by the blob writer. The first real error is raised to the caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait


class Cancelled(Exception):
    """Raised inside a transfer thread when another transfer failed."""


def check(cancelled: threading.Event) -> None:
    if cancelled.is_set():
        raise Cancelled()


def run_all(tasks: Sequence[Callable[[threading.Event], None]], workers: int) -> None:
    if not tasks:
        return
    cancelled = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(workers, len(tasks)))
    futures: list[Future[None]] = []
    try:
        futures = [pool.submit(task, cancelled) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        if not all(f.done() and f.exception() is None for f in futures):
            cancelled.set()
        pool.shutdown(wait=True, cancel_futures=True)
    for future in futures:
        if future.cancelled():
            continue
        error = future.exception()
        if error is not None and not isinstance(error, Cancelled):
            raise error
