"""Parallel transfers: the first failure stops the others and is the error raised."""

from __future__ import annotations

import threading

import pytest

from rootless.errors import RegistryError
from rootless.registry.parallel import check, run_all


def test_first_failure_cancels_the_rest() -> None:
    started: list[str] = []
    stopped: list[str] = []

    def fails(cancelled: threading.Event) -> None:
        raise RegistryError("blob sha256:x: digest mismatch")

    def long_transfer(cancelled: threading.Event) -> None:
        # A transfer that checks between chunks, as fetch_blob's progress callback does.
        started.append("started")
        for _ in range(10_000):
            if cancelled.wait(0.01):
                break
        try:
            check(cancelled)
        finally:
            stopped.append("stopped")

    with pytest.raises(RegistryError, match="digest mismatch"):
        run_all([long_transfer, fails, long_transfer], workers=3)
    # Those already running stop at their next check; those not started never start.
    assert started and len(stopped) == len(started)


def test_all_succeed() -> None:
    done: list[int] = []
    run_all([lambda c, n=n: done.append(n) for n in range(5)], workers=2)
    assert sorted(done) == [0, 1, 2, 3, 4]
    run_all([], workers=2)
