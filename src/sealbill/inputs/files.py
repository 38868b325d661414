"""Reading an input file as text: UTF-8 (a BOM accepted) or UTF-16 declared by its BOM.

Anything else — Latin-1, Windows-1252, UTF-16 without a BOM — is refused with the line and
column of the first byte that is not UTF-8 and what to do, never guessed: a guessed encoding
silently turns ``Müller`` into ``MÃ¼ller`` on an invoice.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path
from typing import IO

from sealbill.inputs.problems import InputRejected

MAX_FILE_BYTES = 2 * 1024 ** 3  # 2 GiB: usage files are streamed; anything bigger is a mistake


def encoding_of(head: bytes) -> str:
    """The codec to read a file starting with ``head`` ("utf-8-sig" or "utf-16")."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and not head.startswith(
            codecs.BOM_UTF32_LE):
        return "utf-16"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    return "utf-8-sig"


def _where_not_utf8(path: Path) -> str:
    """``line L, column C (byte 0xE9)`` of the first byte that is not UTF-8."""
    line = 1
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        for raw in handle:
            try:
                decoder.decode(raw)
            except UnicodeDecodeError as exc:
                return f"line {line}, column {exc.start + 1} (byte 0x{raw[exc.start]:02X})"
            line += 1
    return "at the end of the file (a truncated character)"


def not_text(path: Path, encoding: str) -> InputRejected:
    if encoding.startswith("utf-8"):
        where = _where_not_utf8(path)
        return InputRejected([f"{path}: {where}: not UTF-8 text; save the file as UTF-8 "
                              "(Latin-1 or Windows-1252 files must be converted, e.g. "
                              "`iconv -f latin1 -t utf-8`)"], what="nothing was read")
    return InputRejected([f"{path}: not valid {encoding.upper()} text although it starts with "
                          "a byte-order mark; save the file as UTF-8"], what="nothing was read")


def open_text(path: Path, *, newline: str | None = None) -> tuple[IO[str], str]:
    """(text stream, encoding) of ``path``; a missing file or a folder is refused cleanly."""
    try:
        raw = path.open("rb")
    except IsADirectoryError:
        raise InputRejected([f"{path}: is a folder, expected a file"],
                            what="nothing was read") from None
    except OSError as exc:
        raise InputRejected([f"{path}: cannot be read ({exc.strerror})"],
                            what="nothing was read") from None
    head = raw.peek(4096)[:4096]
    encoding = encoding_of(head[:4])
    if encoding == "utf-32":
        raw.close()
        raise InputRejected([f"{path}: UTF-32 text; save the file as UTF-8"],
                            what="nothing was read")
    if encoding != "utf-16" and b"\x00" in head:
        raw.close()
        line = head[:head.index(b"\x00")].count(b"\n") + 1
        raise InputRejected([f"{path}: line {line}: a NUL byte — UTF-16 without a byte-order "
                             "mark, or not a text file; save the file as UTF-8"],
                            what="nothing was read")
    return io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline=newline), encoding


def read_text(path: Path) -> str:
    """The whole file as text (for small files: accounts, organization)."""
    handle, encoding = open_text(path)
    try:
        with handle:
            return handle.read()
    except UnicodeDecodeError:
        raise not_text(path, encoding) from None
