"""A page's content stream, written as operators into a list: text, rules and filled boxes.

Coordinates are points from the page's top-left corner (the layout's natural direction);
they are flipped to PDF's bottom-left origin when written.

Invariants:
- text is drawn with the faces of :mod:`fonts` only: every character is written as its CID
  in a hex string, in the face that has it, so the ToUnicode map gives it back exactly;
- text this template cannot print (see :meth:`Style.unprintable`) raises :class:`NoFit`
  before anything is drawn with it;
- colours are DeviceRGB only (the output intent is sRGB).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final, TypeVar

from sealbill.documents.fastpdf.fonts import Face, Style

PAGE_WIDTH: Final = 595.2756  # A4 in points
PAGE_HEIGHT: Final = 841.8898
Color = tuple[float, float, float]
CACHED_TEXTS: Final = 20_000  # texts whose width and hex string a style keeps
T = TypeVar("T")


class NoFit(ValueError):
    """This invoice does not fit the compiled template (it goes to Typst instead)."""


def _num(value: float) -> str:
    return f"{value:.2f}"


@lru_cache(maxsize=64)
def _rgb(color: Color) -> str:
    """A colour's three operands (the template uses a handful of colours)."""
    return f"{_num(color[0])} {_num(color[1])} {_num(color[2])}"


def remember(cache: dict[str, T], text: str, value: T) -> None:
    """Keep ``value`` for ``text`` in a per-style cache (labels, seller lines and most amounts
    recur from invoice to invoice), up to a bound: memory stays flat over any run."""
    if len(cache) < CACHED_TEXTS:
        cache[text] = value


class Canvas:
    """Operators of one page, and the faces they use (resource name per face)."""

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.faces: dict[int, tuple[str, Face]] = {}  # id(face) -> (resource name, face)
        self._font: tuple[str, float] | None = None
        self._fill: Color | None = None
        self._spacing = 0.0

    def width(self, text: str, style: Style, size: float) -> float:
        """Advance of ``text`` in points (no kerning, as it is drawn)."""
        units = style.measured.get(text)
        if units is None:
            try:
                units = sum(map(style.widths.__getitem__, text))
            except KeyError:
                raise NoFit(f"characters the template cannot print in {text!r}") from None
            remember(style.measured, text, units)
        return units * size / 1000

    def check(self, text: str, style: Style) -> None:
        bad = style.unprintable(text)
        if bad:
            raise NoFit(f"characters the template cannot print: {sorted(bad)!r}")

    def _resource(self, face: Face) -> str:
        found = self.faces.get(id(face))
        if found is None:
            found = self.faces[id(face)] = (f"F{len(self.faces) + 1}", face)
        return found[0]


    def _set_fill(self, color: Color) -> None:
        self._fill = color
        self.ops.append(f"{_rgb(color)} rg")

    def text(self, x: float, baseline: float, text: str, style: Style, size: float,
             color: Color, tracking: float = 0.0) -> None:
        """Draw ``text`` with its baseline at ``baseline`` (from the top), starting at ``x``."""
        if not text:
            return
        if color != self._fill:
            self._set_fill(color)
        if tracking != self._spacing:
            self._spacing = tracking
            self.ops.append(f"{_num(tracking)} Tc")
        # One text object per piece of text, as Typst writes them: text extraction (pypdf)
        # separates text objects reliably, positions inside one object less so.
        primary = style.primary
        hexed = style.primary_hex.get(text)
        if hexed is None and style.primary_chars.issuperset(text):
            hexed = text.translate(primary.table)
            remember(style.primary_hex, text, hexed)
        if hexed is not None:  # the usual case: one face, one operator (~100 an invoice)
            found = self.faces.get(id(primary))
            name = found[0] if found is not None else self._resource(primary)
            self.ops.append(f"BT 1 0 0 1 {x:.2f} {PAGE_HEIGHT - baseline:.2f} Tm "
                            f"/{name} {size:.2f} Tf <{hexed}> Tj ET")
            return
        self.check(text, style)
        self.ops.append(f"BT 1 0 0 1 {x:.2f} {PAGE_HEIGHT - baseline:.2f} Tm")
        self._font = None
        run: list[str] = []
        current: Face | None = None
        for char in text:
            face = style.face_for(ord(char))
            if face is not current and run:
                assert current is not None
                self._show(current, "".join(run), size)
                run = []
            current = face
            run.append(face.cids[ord(char)])
        if run and current is not None:
            self._show(current, "".join(run), size)
        self.ops.append("ET")

    def _show(self, face: Face, hex_text: str, size: float) -> None:
        name = self._resource(face)
        if self._font != (name, size):
            self._font = (name, size)
            self.ops.append(f"/{name} {_num(size)} Tf")
        self.ops.append(f"<{hex_text}> Tj")

    def right(self, x_right: float, baseline: float, text: str, style: Style, size: float,
              color: Color) -> None:
        """Draw ``text`` ending at ``x_right``."""
        units = style.measured.get(text)  # :meth:`width`, its usual case inlined
        advance = units * size / 1000 if units is not None else self.width(text, style, size)
        self.text(x_right - advance, baseline, text, style, size, color)

    def rule(self, x1: float, x2: float, y: float, thickness: float, color: Color) -> None:
        """A horizontal line from ``x1`` to ``x2`` at ``y`` (from the top)."""
        y_pdf = _num(PAGE_HEIGHT - y)
        self.ops.append(f"{_rgb(color)} RG "
                        f"{_num(thickness)} w {_num(x1)} {y_pdf} m {_num(x2)} {y_pdf} l S")

    def box(self, x: float, top: float, width: float, height: float, color: Color) -> None:
        """A filled rectangle whose top-left corner is at (``x``, ``top``)."""
        self._fill = None  # the fill colour changes: the next text sets its own again
        self.ops.append(f"{_rgb(color)} rg "
                        f"{_num(x)} {_num(PAGE_HEIGHT - top - height)} {_num(width)} "
                        f"{_num(height)} re f")

    def stream(self) -> bytes:
        """The content stream (uncompressed)."""
        return "\n".join(self.ops).encode("latin-1")


def wrap(canvas: Canvas, text: str, style: Style, size: float, width: float) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width``.

    A word wider than ``width`` raises :class:`NoFit` (Typst would cut it into boxes).
    """
    units = style.measured.get(text)  # Canvas.width, its usual case inlined
    if (units * size / 1000 if units is not None else canvas.width(text, style, size)) <= width:
        return [text]
    space = canvas.width(" ", style, size)
    lines: list[str] = []
    current: list[str] = []
    used = 0.0
    for word in text.split(" "):
        w = canvas.width(word, style, size)
        if w > width:
            raise NoFit(f"word too long for its column: {word[:40]!r}")
        if current and used + space + w > width:
            lines.append(" ".join(current))
            current, used = [word], w
        else:
            used = used + space + w if current else w
            current.append(word)
    lines.append(" ".join(current))
    return lines
