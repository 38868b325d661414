"""Forked workers: results in order, a failure or a death reported as such, never as success."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from sealbill.pipeline.forked import WorkerDied, run_forked


def test_results_come_back_in_worker_order_with_progress() -> None:
    seen: list[int] = []

    def work(k: int, progress: Callable[[int], None]) -> dict[str, int]:
        progress(k + 1)
        return {"worker": k, "pid": os.getpid()}

    results = run_forked(3, work, seen.append)
    assert [r["worker"] for r in results] == [0, 1, 2]
    assert len({r["pid"] for r in results} | {os.getpid()}) == 4  # three other processes
    assert sum(seen) == 1 + 2 + 3


def test_a_worker_that_raises_is_reported_with_its_error() -> None:
    def work(k: int, progress: Callable[[int], None]) -> int:
        if k == 1:
            raise ValueError("no such invoice")
        return k

    results = run_forked(2, work)
    assert results[0] == 0
    assert isinstance(results[1], WorkerDied) and "no such invoice" in results[1].error


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_worker_killed_by_a_signal_is_reported_dead(sig: signal.Signals) -> None:
    def work(k: int, progress: Callable[[int], None]) -> int:
        if k == 0:
            os.kill(os.getpid(), sig)
        return k

    results = run_forked(2, work)
    assert results[0] == WorkerDied(0, -sig, "")
    assert results[1] == 1
