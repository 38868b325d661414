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
import os
import re
import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Final

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


def _typst_library() -> Path:
    folder = _package_folder("typst")
    candidates = sorted(folder.glob("_typst*.so")) + sorted(folder.glob("_typst*.pyd"))
    if not candidates:
        raise AssetError(f"no typst extension module in {folder}")
    return candidates[0]


def _offsets(handle: BinaryIO, magic: bytes, block: int = 1 << 22) -> Iterator[int]:
    """Every offset of ``magic`` in the file, read ``block`` bytes at a time (the library
    is ~80 MB: read whole, it would add that to the peak memory of whoever prepares fonts)."""
    carried, start = b"", 0  # the last bytes of the previous block, where it ended
    while chunk := handle.read(block):
        data = carried + chunk
        at = data.find(magic)
        while at >= 0:
            yield start - len(carried) + at
            at = data.find(magic, at + 1)
        carried, start = data[-(len(magic) - 1):], start + len(chunk)


def _sfnt_length(data: bytes, at: int) -> int | None:
    """Length of the OpenType file starting at ``at`` (end of its last table), or None."""
    if len(data) < at + 12:
        return None
    count = struct.unpack_from(">H", data, at + 4)[0]
    if not 5 <= count <= 40 or len(data) < at + 12 + 16 * count:
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

    fonts: dict[str, bytes] = {}
    with open(_typst_library(), "rb") as handle:
        for at in list(_offsets(handle, b"OTTO")):
            length = _sfnt_length(os.pread(handle.fileno(), 12 + 16 * 40, at), 0)
            if not length:
                continue
            blob = os.pread(handle.fileno(), length, at)
            try:
                name = TTFont(io.BytesIO(blob), lazy=True)["name"].getDebugName(4)
            except Exception:  # not a font after all: four bytes that spell OTTO
                name = None
            if name and name not in fonts:
                fonts[name] = blob
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
