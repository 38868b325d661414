"""The next batch built while this one is sent: a sender's one overlap.

A sender sends a batch one message after the other, and between its two round trips a message
leaves the process waiting for the SMTP server's replies (~0.45 ms a message, measured:
bench/RESULTS.md, "where the senders wait"). Building the next batch's messages (MIME, DKIM)
and the guard's reading back of their bytes is pure computation on what the batch's read
snapshot gathered: :class:`Ahead` runs it in a thread during those waits.

Invariants:
- the thread only computes, from inputs the caller's thread gathered before starting it: it
  never touches a database connection, the transport, the pending outcomes nor a counter of
  the sender — so no connection is used by two threads, and no write or claim can come of it;
- the caller's thread keeps everything else, in the order it had: the next batch is judged
  (its write transaction, its fresh read) only after it asked for :meth:`Ahead.result`, that
  is after the current batch's sends are done;
- whatever ends the current batch (its end, a stop, an exception), leaving the ``with`` block
  stops and joins the thread: a prepared batch not asked for is dropped, never claimed nor
  recorded anywhere, and no thread outlives the batch (a sender may fork after it);
- an exception in the thread, or in gathering the inputs, is raised in the caller's thread —
  by :meth:`Ahead.result`, or on leaving the block when the batch stopped without asking
  for it — or, when the caller's thread is already raising, added to that exception as a
  note: never swallowed. A failure to gather is raised where the preparation was asked for,
  after the current batch's sends, as it was when nothing overlapped.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Generic, TypeVar

# While the next batch is built, a thread woken by an SMTP reply waits for the interpreter's
# lock at most this long before the builder is made to give it up (CPython's default, 5 ms, is
# ten SMTP round trips: a batch's sends would stretch past the guard's fresh read).
SWITCH_SECONDS = 0.0005

In = TypeVar("In")
Out = TypeVar("Out")


class Ahead(Generic[In, Out]):
    """``build`` applied to each input, in order, in a thread started by :meth:`start`.

    The inputs are gathered at construction, in the caller's thread (``gather``: a database
    read, for instance); the results come back, in order, from :meth:`result`. Use it as a
    context manager (see the module's invariants)."""

    def __init__(self, gather: Callable[[], list[In]], build: Callable[[In], Out]) -> None:
        self._build = build
        self._error: BaseException | None = None
        self._inputs: list[In] = []
        try:
            self._inputs = gather()
        except Exception as exc:  # raised where the preparation is asked for (the module)
            self._error = exc
        self._built: list[Out] = []
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Ahead[In, Out]:
        return self

    def start(self) -> None:
        """Start building (once; nothing to build or a failed gather: no thread)."""
        if self._thread is None and self._error is None and self._inputs:
            self._thread = threading.Thread(target=self._run, name="sealbill-next-batch",
                                            daemon=True)
            self._thread.start()

    def result(self) -> list[Out]:
        """Every input built, in order (waits for the thread); raises what building raised."""
        self.start()
        self._join()
        if self._error is not None:
            raise self._error
        if self._cancel.is_set() or len(self._built) != len(self._inputs):
            raise RuntimeError("the next batch was dropped: it cannot be asked for")
        return self._built

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._cancel.set()  # a batch not asked for is dropped: the thread stops at its next
        self._join()
        error = self._error
        if error is None or error is exc:
            return
        if exc is not None:
            exc.add_note(f"building the next batch failed too: {error!r}")
            return
        raise error

    def _run(self) -> None:
        try:
            for one in self._inputs:
                if self._cancel.is_set():
                    return
                self._built.append(self._build(one))
        except BaseException as exc:  # handed to the caller's thread, never swallowed
            self._error = exc

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()


@contextmanager
def prompt_switches(seconds: float = SWITCH_SECONDS) -> Iterator[None]:
    """The interpreter's switch interval at most ``seconds`` for the block, given back after
    (it is the process's: a caller's own setting is restored, whatever ends the block)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(before)
