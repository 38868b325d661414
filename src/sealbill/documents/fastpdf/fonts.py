"""Fonts of the compiled template: subset once per process, Identity-H, with a ToUnicode map.

A *style* (regular, bold) is a chain of fonts, as in the Typst template: Libertinus Serif,
then New Computer Modern for what Libertinus lacks (U+202F, the narrow no-break space of
French amounts, for one). Every character a font of the chain has is printable, in any
script it covers; to keep each PDF small the font is cut into *faces*: the common page
(Latin-1, general punctuation, currency signs and a few more) and then one face per
128-code-point page of everything else. A face is subset with fontTools the first time an
invoice needs it, then kept for the life of the process; an invoice embeds only the faces it
uses.

Invariants:
- a face's widths (``/W``) are its font's advances and its ToUnicode map gives back the exact
  character of every glyph it draws, so the text extracted from the PDF is the text printed;
- characters no font of the chain has, right-to-left characters and combining marks (which
  need shaping this template does not do) are reported by :meth:`Style.unprintable`, and the
  invoice goes to Typst instead;
- the same characters give the same face bytes in every process (no clock, no random:
  the subset tag derives from the face's name).
"""

from __future__ import annotations

import hashlib
import io
import unicodedata
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Final

from sealbill.documents.fastpdf.assets import FONT_NAMES, font_program

if TYPE_CHECKING:
    from fontTools.ttLib import TTFont

# What nearly every invoice prints: ASCII, Latin-1, the French ligatures, typographic
# punctuation, spaces, the euro sign. Kept small, because every PDF embeds it.
_COMMON: Final = frozenset(
    [*range(0x20, 0x7F), *range(0xA0, 0x100), 0x152, 0x153, 0x178, 0x2009, 0x2013, 0x2014,
     0x2018, 0x2019, 0x201A, 0x201C, 0x201D, 0x201E, 0x2022, 0x2026, 0x2030, 0x2039, 0x203A,
     0x202F, 0x20AC, 0x2122, 0x2212]
)
_SHAPED: Final = frozenset({"R", "AL", "AN", "RLE", "RLO", "RLI"})


def page_of(cp: int) -> int:
    """The face page of a code point: 0 for the common page, else 1 + cp // 128."""
    return 0 if cp in _COMMON else 1 + (cp >> 7)


@dataclass(slots=True)
class Face:
    """One subset font program: a font of the chain restricted to one page of code points."""

    font_name: str
    page: int
    base_font: str  # "ABCDEF+LibertinusSerif-Regular"
    cids: dict[int, str]  # code point -> 4 hex digits (CID = glyph id in the subset)
    widths: dict[int, float]  # code point -> advance in 1/1000 em
    program: bytes  # the subset OpenType file, Flate-compressed
    program_length: int
    to_unicode: bytes  # the ToUnicode CMap, Flate-compressed
    cid_widths: bytes  # the /W array
    descriptor: bytes  # FontDescriptor entries except /FontFile3
    table: dict[int, str] = field(default_factory=dict)  # str.translate table (cp -> hex)


def _subset(program: bytes, codepoints: list[int]) -> TTFont:
    from fontTools import subset  # here, as below: a worker given its faces never loads it
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = []
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "MATH", "BASE", "JSTF", "kern", "DSIG",
                            "FFTM", "PfEd"]  # the last two: fontTools would warn, then drop
    subsetter = subset.Subsetter(options)
    font = TTFont(io.BytesIO(program), recalcTimestamp=False)  # same bytes in every process
    subsetter.populate(unicodes=codepoints)
    subsetter.subset(font)
    return font


def _to_unicode(cids: dict[int, str]) -> bytes:
    entries = sorted((cid, cp) for cp, cid in cids.items())
    lines = [
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def",
        "1 begincodespacerange <0000> <FFFF> endcodespacerange",
    ]
    for start in range(0, len(entries), 100):
        chunk = entries[start:start + 100]
        lines.append(f"{len(chunk)} beginbfchar")
        lines += [f"<{cid}> <{chr(cp).encode('utf-16-be').hex().upper()}>" for cid, cp in chunk]
        lines.append("endbfchar")
    lines += ["endcmap CMapName currentdict /CMap defineresource pop end end"]
    return zlib.compress("\n".join(lines).encode("ascii"))


def make_face(font_name: str, page: int, codepoints: list[int]) -> Face:
    """Subset ``font_name`` to ``codepoints`` (all of one page) and prepare its PDF parts."""
    font = _subset(font_program(font_name), codepoints)
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap()
    order = {name: gid for gid, name in enumerate(font.getGlyphOrder())}
    metrics = font["hmtx"].metrics
    cids = {cp: f"{order[name]:04X}" for cp, name in cmap.items() if cp in set(codepoints)}
    widths = {cp: metrics[cmap[cp]][0] * scale for cp in cids}
    by_gid = sorted({int(cid, 16): widths[cp] for cp, cid in cids.items()}.items())
    w_array = " ".join(f"{gid} [{width:g}]" for gid, width in by_gid)
    out = io.BytesIO()
    font.save(out)
    raw = out.getvalue()
    postscript = font["name"].getDebugName(6) or font_name.replace(" ", "")
    tag = "".join(chr(65 + b % 26) for b in hashlib.sha256(
        f"{font_name}/{page}".encode()).digest()[:6])
    head, os2 = font["head"], font["OS/2"]
    cap = getattr(os2, "sCapHeight", 0) or os2.sTypoAscender
    descriptor = (
        f"/Type /FontDescriptor /FontName /{tag}+{postscript} /Flags 4 "
        f"/FontBBox [{head.xMin * scale:g} {head.yMin * scale:g} {head.xMax * scale:g} "
        f"{head.yMax * scale:g}] /ItalicAngle 0 /Ascent {os2.sTypoAscender * scale:g} "
        f"/Descent {os2.sTypoDescender * scale:g} /CapHeight {cap * scale:g} /StemV 80"
    ).encode()
    program = zlib.compress(raw, 9)  # once per process: the smallest file is worth it
    return Face(font_name=font_name, page=page, base_font=f"{tag}+{postscript}", cids=cids,
                widths=widths, program=program, program_length=len(program),
                to_unicode=_to_unicode(cids), cid_widths=f"[{w_array}]".encode(),
                descriptor=descriptor, table=dict(cids))


class Style:
    """A font chain (regular or bold): which face prints each character, and how wide it is."""

    def __init__(self, name: str) -> None:
        from fontTools.ttLib import TTFont

        self.name = name
        self.fonts = FONT_NAMES[name]
        self._owner: dict[int, tuple[str, int]] = {}  # cp -> (font name, page)
        for font_name in reversed(self.fonts):  # earlier fonts of the chain win
            cmap = TTFont(io.BytesIO(font_program(font_name)), lazy=True).getBestCmap()
            for cp in cmap:
                self._owner[cp] = (font_name, page_of(cp))
        self._pages: dict[tuple[str, int], list[int]] = {}
        for cp, key in self._owner.items():
            self._pages.setdefault(key, []).append(cp)
        self._faces: dict[tuple[str, int], Face] = {}
        primary = self.face_for(ord("a"))
        # The fast path's tables: the characters the primary common face prints, and widths.
        self.primary = primary
        self.primary_chars = frozenset(chr(cp) for cp in primary.cids)
        self.widths: dict[str, float] = {}
        for cp in self._owner:
            self.widths[chr(cp)] = self.width_of(cp)
        # What the canvas found for texts already drawn: advance in 1/1000 em, and the hex
        # string of those the primary face prints (filled as invoices are drawn).
        self.measured: dict[str, float] = {}
        self.primary_hex: dict[str, str] = {}

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the texts this process drew (a worker fills its own)."""
        return {**self.__dict__, "measured": {}, "primary_hex": {}}

    def face_for(self, cp: int) -> Face:
        """The face that prints ``cp`` (subset on first use)."""
        key = self._owner[cp]
        face = self._faces.get(key)
        if face is None:
            face = self._faces[key] = make_face(key[0], key[1], sorted(self._pages[key]))
        return face

    def width_of(self, cp: int) -> float:
        """Advance of ``cp`` in 1/1000 em, read from the full font (no subsetting needed)."""
        return _full_widths(self._owner[cp][0])[cp]

    def unprintable(self, text: str) -> set[str]:
        """Characters of ``text`` this template cannot print faithfully."""
        bad = set()
        for char in set(text) - self.primary_chars:
            cp = ord(char)
            if (cp not in self._owner or unicodedata.bidirectional(char) in _SHAPED
                    or unicodedata.combining(char)):
                bad.add(char)
        return bad


@lru_cache(maxsize=8)
def _full_widths(font_name: str) -> dict[int, float]:
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(font_program(font_name)), lazy=True)
    scale = 1000 / font["head"].unitsPerEm
    metrics = font["hmtx"].metrics
    return {cp: metrics[name][0] * scale for cp, name in font.getBestCmap().items()}


_styles: dict[str, Style] = {}


def style(name: str) -> Style:
    """The process-wide :class:`Style` ``name`` ("regular" or "bold")."""
    found = _styles.get(name)
    if found is None:
        found = _styles[name] = Style(name)
    return found


def prepared() -> dict[str, Style]:
    """Every style, ready (fonts read, common faces subset), for :func:`adopt` in a worker."""
    return {name: style(name) for name in FONT_NAMES}


def adopt(styles: dict[str, Style]) -> None:
    """Use styles another process prepared (:func:`prepared`) instead of preparing them here:
    a face's bytes depend only on its characters, so they are the ones this process would
    subset (about half a second of a worker's start, and fontTools' import, saved)."""
    _styles.update(styles)
