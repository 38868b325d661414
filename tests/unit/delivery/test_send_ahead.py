"""The next batch built in a thread (``send_ahead.Ahead``): its results in order, every failure
raised in the caller's thread (never swallowed), and no thread left when the block ends."""

from __future__ import annotations

import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.pipeline.delivery.send_ahead import Ahead, prompt_switches


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate()}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(), max_size=30))
def test_each_input_is_built_once_in_order_in_another_thread(inputs: list[int]) -> None:
    built_in: list[str] = []

    def build(x: int) -> int:
        built_in.append(threading.current_thread().name)
        return 2 * x

    with Ahead(lambda: list(inputs), build) as ahead:
        ahead.start()
        assert ahead.result() == [2 * x for x in inputs]
    assert built_in == ["sealbill-next-batch"] * len(inputs)
    assert "sealbill-next-batch" not in _threads()


def test_a_failure_to_build_is_raised_where_the_batch_is_asked_for() -> None:
    def build(x: int) -> int:
        if x == 2:
            raise KeyError("built wrong")
        return x

    with pytest.raises(KeyError, match="built wrong"), Ahead(lambda: [1, 2, 3], build) as ahead:
        ahead.start()
        ahead.result()


def test_a_failure_to_gather_is_raised_only_where_the_batch_is_asked_for() -> None:
    def gather() -> list[int]:
        raise OSError("disk I/O error")

    ahead = Ahead(gather, lambda x: x)
    with pytest.raises(OSError, match="disk I/O error"), ahead:
        done = "the current batch goes on"  # nothing raised at construction
        ahead.start()  # nothing to build: no thread
        assert done and "sealbill-next-batch" not in _threads()
        ahead.result()


def test_a_batch_dropped_after_its_build_failed_still_raises_the_failure() -> None:
    """A stop of the current batch (the block left without asking) does not hide a failure of
    the thread."""
    def build(x: int) -> int:
        raise ZeroDivisionError("in the thread")

    with pytest.raises(ZeroDivisionError, match="in the thread"), \
            Ahead(lambda: [1], build) as ahead:
        ahead.start()


def test_the_callers_exception_wins_and_carries_the_threads_failure_as_a_note() -> None:
    building = threading.Event()

    def build(x: int) -> int:
        building.set()
        raise ZeroDivisionError("in the thread")

    with pytest.raises(RuntimeError, match="smtp broke") as raised, \
            Ahead(lambda: [1], build) as ahead:
        ahead.start()
        assert building.wait(5)
        raise RuntimeError("smtp broke")
    assert any("ZeroDivisionError" in note for note in raised.value.__notes__)


def test_a_dropped_batch_stops_building_and_leaves_no_thread() -> None:
    started, release, built = threading.Event(), threading.Event(), []

    def build(x: int) -> int:
        started.set()
        release.wait(5)
        built.append(x)
        return x

    with Ahead(lambda: list(range(100)), build) as ahead:
        ahead.start()
        assert started.wait(5)
        release.set()  # the block is left while the thread builds: the rest is not built
    assert len(built) < 100
    assert "sealbill-next-batch" not in _threads()
    with pytest.raises(RuntimeError, match="dropped"):
        ahead.result()


def test_the_switch_interval_is_lowered_for_the_block_and_given_back() -> None:
    before = sys.getswitchinterval()
    with pytest.raises(ValueError), prompt_switches(0.0001):
        assert sys.getswitchinterval() == pytest.approx(0.0001)
        raise ValueError("whatever ends the block")
    assert sys.getswitchinterval() == before
