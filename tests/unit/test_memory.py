"""sealbill.memory: freed heap handed back to the system, live values untouched."""

from __future__ import annotations

from sealbill.memory import give_back


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_freed_batches_go_back_to_the_system_and_live_values_stay() -> None:
    # a sender's batch: large buffers (documents, MIME), each followed on the heap by a value
    # that outlives the batch — the holes they leave are in the middle of the heap, which
    # glibc does not give back on its own
    batch, kept = [], []
    for i in range(300):
        batch.append(bytes([i % 251]) * 100_000)
        kept.append(bytes([i % 7]) * 1_000)
    del batch
    freed = _rss_kib()
    assert give_back() is True
    assert freed - _rss_kib() > 10_000  # at least 10 of the 30 MB went back
    assert kept == [bytes([i % 7]) * 1_000 for i in range(300)]
