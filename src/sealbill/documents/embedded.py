"""Read the embedded ``factur-x.xml`` of a PDF quickly, the way a PDF reader resolves it.

The guard reads the XML inside every outgoing PDF. pikepdf (qpdf) does that in about 0.3 ms;
this reader does it in a few tens of microseconds for the simple file layout sealbill writes,
and answers ``None`` — "not that layout, use the full parser" — for anything else.

It follows the references, it does not search the file for likely bytes: ``startxref`` → the
one cross-reference table → the trailer's ``/Root`` → the catalog's ``/EmbeddedFiles`` name
tree → the file specification → its ``/EF`` stream → ``/Length`` bytes of Flate data.

Invariants (each one not met gives ``None``, never a guess):
- one ``%%EOF`` and one classic ``xref`` table starting at object 0, no ``/Prev``, no
  ``/XRefStm`` (no incremental update, no cross-reference stream): each object has one offset;
- every object on the path is found at its cross-reference offset under its own number;
- the name tree lists exactly one file, named ``factur-x.xml``; its ``/F`` and ``/UF``
  entries (when both are present) point at the same stream;
- the stream's ``/Length`` is a direct integer, its only filter is ``/FlateDecode`` (or none),
  and ``endstream`` follows the announced length.
"""

from __future__ import annotations

import re
import zlib

NAME = b"factur-x.xml"
_TAIL = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_XREF = re.compile(rb"xref\r?\n0 (\d+)\r?\n")
_ROOT = re.compile(rb"/Root\s+(\d+)\s+0\s+R\b")
_NAMES = re.compile(rb"/EmbeddedFiles\s*<<\s*/Names\s*\["
                    rb"\s*\(([^()\\]*)\)\s*(\d+)\s+0\s+R\s*\]\s*>>")
_EF = re.compile(rb"/EF\s*<<\s*((?:/U?F\s+\d+\s+0\s+R\s*)+)>>")
_EF_ENTRY = re.compile(rb"/(U?F)\s+(\d+)\s+0\s+R")
_STREAM_DICT = re.compile(rb"<<(.*?)>>\s*stream\r?\n", re.DOTALL)
_LENGTH = re.compile(rb"/Length\s+(\d+)(\s+\d+\s+R)?")
_FILTER = re.compile(rb"/Filter\s*(/\w+|\[)")


def embedded_xml(pdf: bytes) -> bytes | None:
    """The bytes of the embedded ``factur-x.xml``, or ``None`` when the file is not in the
    simple layout (the caller then asks a full PDF parser)."""
    try:
        return _read(pdf)
    except (ValueError, IndexError, zlib.error):
        return None


def _read(pdf: bytes) -> bytes | None:
    tail = pdf[-2048:]
    found = _TAIL.search(tail)
    if found is None or pdf.count(b"%%EOF") != 1 or b"/Prev" in tail or b"/XRefStm" in tail:
        return None
    xref_at = int(found[1])
    table = _XREF.match(pdf, xref_at)
    if table is None:
        return None
    size, entries = int(table[1]), table.end()
    trailer_at = entries + 20 * size
    if not pdf.startswith(b"trailer", trailer_at):
        return None
    root = _ROOT.search(pdf, trailer_at)
    if root is None:
        return None

    def body(number: int) -> tuple[int, int]:
        """Start and end (``endobj``) of object ``number``, from its xref entry."""
        if not 0 < number < size:
            raise ValueError("object number outside the table")
        entry = pdf[entries + 20 * number:entries + 20 * number + 20]
        if entry[17:18] != b"n" or entry[11:16] != b"00000":
            raise ValueError("object not in use")
        start = int(entry[:10])
        header = b"%d 0 obj" % number
        if not pdf.startswith(header, start):
            raise ValueError("object not at its offset")
        return start + len(header), pdf.index(b"endobj", start)

    start, end = body(int(root[1]))
    names = list(_NAMES.finditer(pdf, start, end))
    if len(names) != 1 or names[0][1] != NAME:
        return None
    start, end = body(int(names[0][2]))
    ef = list(_EF.finditer(pdf, start, end))
    if len(ef) != 1:
        return None
    targets = {int(number) for _, number in _EF_ENTRY.findall(ef[0][1])}
    if len(targets) != 1:
        return None
    start, end = body(targets.pop())
    head = _STREAM_DICT.match(pdf, start + _skip_space(pdf, start))
    if head is None or head.end() > end:
        return None
    dictionary = head[1]
    length = _LENGTH.search(dictionary)
    filters = _FILTER.findall(dictionary)
    if length is None or length[2] or b"/DecodeParms" in dictionary:
        return None
    if filters not in ([], [b"/FlateDecode"]):
        return None
    data_end = head.end() + int(length[1])
    if not re.match(rb"\s*endstream", pdf[data_end:data_end + 12]):
        return None
    data = pdf[head.end():data_end]
    return zlib.decompress(data) if filters else data


def _skip_space(pdf: bytes, at: int) -> int:
    n = 0
    while pdf[at + n:at + n + 1] in (b" ", b"\n", b"\r", b"\t"):
        n += 1
    return n
