"""The font programs and colour profile the compiled invoice template uses, found once.

The fonts are the very ones Typst draws the reference invoice with (Libertinus Serif, New
Computer Modern): the ``typst`` package carries them inside its extension module as plain
OpenType files, so this module finds them there by their sfnt table directory and their name
table — no system font, no download, the same bytes on every machine with the same ``typst``
version (the Typst path's own determinism rule). The sRGB ICC profile is the one pikepdf ships
for PDF/A.

Invariants:
- a font is returned only if its table directory parses, fontTools reads it and its full name
  is the one asked for; otherwise :class:`AssetError` (the caller falls back to Typst);
- the files are read once per process (``lru_cache``).
"""

from __future__ import annotations

import importlib.util
import io
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import Final

# Full names (name id 4) of the faces the template uses, by style.
FONT_NAMES: Final = {
    "regular": ("Libertinus Serif Regular", "NewComputerModern10-Regular"),
    "bold": ("Libertinus Serif Bold", "NewComputerModern10-Bold"),
}
_TAG: Final = re.compile(rb"[A-Za-z0-9/ _]{4}")


class AssetError(RuntimeError):
    """A font or profile the compiled template needs could not be found."""


def _package_folder(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise AssetError(f"package {name} is not installed")
    return Path(spec.origin).parent


def _typst_binary() -> bytes:
    folder = _package_folder("typst")
    candidates = sorted(folder.glob("_typst*.so")) + sorted(folder.glob("_typst*.pyd"))
    if not candidates:
        raise AssetError(f"no typst extension module in {folder}")
    return candidates[0].read_bytes()


def _sfnt_length(data: bytes, at: int) -> int | None:
    """Length of the OpenType file starting at ``at`` (end of its last table), or None."""
    count = struct.unpack_from(">H", data, at + 4)[0]
    if not 5 <= count <= 40:
        return None
    end = 0
    for k in range(count):
        tag, _, offset, length = struct.unpack_from(">4sIII", data, at + 12 + 16 * k)
        if not _TAG.fullmatch(tag):
            return None
        end = max(end, offset + length)
    return end if end < 20_000_000 else None


@lru_cache(maxsize=1)
def typst_fonts() -> dict[str, bytes]:
    """Full name -> OpenType bytes of every CFF font inside the typst package."""
    from fontTools.ttLib import TTFont  # here: workers given their faces never load it

    data = _typst_binary()
    fonts: dict[str, bytes] = {}
    at = data.find(b"OTTO")
    while at >= 0:
        length = _sfnt_length(data, at)
        if length:
            blob = data[at:at + length]
            try:
                name = TTFont(io.BytesIO(blob), lazy=True)["name"].getDebugName(4)
            except Exception:  # not a font after all: four bytes that spell OTTO
                name = None
            if name and name not in fonts:
                fonts[name] = blob
        at = data.find(b"OTTO", at + 1)
    return fonts


def font_program(name: str) -> bytes:
    """The OpenType bytes of the typst-bundled font whose full name is ``name``."""
    fonts = typst_fonts()
    if name not in fonts:
        raise AssetError(f"font {name!r} not found in the typst package")
    return fonts[name]


@lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The sRGB ICC profile pikepdf ships for PDF/A output intents."""
    path = _package_folder("pikepdf") / "pdfa" / "data" / "sRGB.icc"
    if not path.is_file():
        raise AssetError(f"sRGB profile not found at {path}")
    return path.read_bytes()
