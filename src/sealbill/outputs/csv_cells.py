"""CSV that a spreadsheet opens as text: formula injection neutralized in every cell.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by
spreadsheet programs as a formula (OWASP "CSV injection"); such a cell is written with a
leading apostrophe, which the spreadsheet shows as text. Every CSV sealbill writes goes
through :func:`csv_text`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: object) -> str:
    """The cell's text, with a leading apostrophe if a spreadsheet would run it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    """The whole CSV document (``\\n`` line ends), every cell neutralized."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralize(name) for name in header])
    writer.writerows([neutralize(value) for value in row] for row in rows)
    return buffer.getvalue()
