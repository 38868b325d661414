"""Worker processes that never outlive the process that started them.

A renderer or sender worker whose parent was killed (SIGKILL leaves it no chance to stop its
pool) would keep running as an orphan: :func:`exit_with_parent`, called first in every worker,
makes it exit as soon as its parent is gone. On Linux the kernel delivers SIGKILL to the
worker when the parent dies (``prctl(PR_SET_PDEATHSIG)``, set only when the worker's parent is
the process that asked for it); everywhere, a daemon thread also watches the parent id (a
re-parented worker sees another ``getppid()``) and ends the worker within
:data:`WATCH_SECONDS`. Rendering and sending are idempotent, so a rerun reclaims the work
the killed workers left.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

WATCH_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def _kernel_signal_on_parent_death() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: the watcher thread is enough
        return


def _watch(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(70)  # the parent is gone: nothing of ours may keep running
        time.sleep(WATCH_SECONDS)


def exit_with_parent(parent_pid: int, kernel: bool = True) -> None:
    """Make this worker process end when the process ``parent_pid`` dies.

    ``kernel=False`` when the worker may be started from a thread that ends before the
    process does: the kernel's signal follows the *thread* that started the worker, so only
    the watcher thread is used then."""
    if kernel and sys.platform.startswith("linux") and os.getppid() == parent_pid:
        _kernel_signal_on_parent_death()
    if os.getppid() != parent_pid:  # it died before we were ready
        os._exit(70)
    threading.Thread(target=_watch, args=(parent_pid,), name="sealbill-parent-watch",
                     daemon=True).start()
