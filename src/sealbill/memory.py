"""Freed memory handed back to the system between the pages of a long loop (glibc).

A sender holds one batch of composed messages at a time (documents, MIME, the guard's reading
of the bytes: about 35 MB for 100 messages); when the batch is dropped, glibc keeps most of
the freed heap mapped for reuse, and what the next batches leave around it (a few rows, cached
statements) pins more of it, so the process's resident memory crept up with every page
sent — with the run's size, not the batch's. :func:`give_back` asks glibc to return the
free pages (``malloc_trim(0)``: whole free pages anywhere in the heap, not only at its top).

Invariant: it frees nothing that is in use and changes no value; where there is no glibc
(macOS, musl without ``malloc_trim``) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def give_back() -> bool:
    """Return the free heap pages to the system; whether this platform could."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
