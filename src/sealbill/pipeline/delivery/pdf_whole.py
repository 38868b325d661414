"""Is an attachment a whole PDF? Checked on the exact bytes about to leave.

A PDF truncated on disk whose recorded digest was updated to match still yields its embedded
XML to a repairing reader (qpdf rebuilds a lost cross-reference table), so the digest and XML
checks alone would send it damaged. :func:`pdf_problem` refuses, from the bytes alone and
cheaply (it reads the head and the last kilobyte):
- no ``%PDF-`` header;
- no ``%%EOF`` at the end (after trailing white space);
- a last ``startxref`` that is missing, out of range, or does not point at a cross-reference
  table (``xref``) or stream (``N G obj``).
"""

from __future__ import annotations

import re

_TAIL = 1024
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_XREF_AT = re.compile(rb"xref\b|\d+\s+\d+\s+obj\b")


def pdf_problem(pdf: bytes) -> str | None:
    """Why ``pdf`` is not a whole PDF, or None."""
    if not pdf.startswith(b"%PDF-"):
        return "the attachment is not a PDF (no %PDF- header)"
    tail = pdf[-_TAIL:]
    if not tail.rstrip().endswith(b"%%EOF"):
        return "the PDF is truncated (it does not end with %%EOF)"
    found = _STARTXREF.search(tail)
    if found is None:
        return "the PDF has no startxref before its %%EOF"
    offset = int(found.group(1))
    if offset >= len(pdf) or _XREF_AT.match(pdf, offset) is None:
        return f"the PDF's startxref ({offset}) does not point at a cross-reference section"
    return None
