"""The prepared fonts of the compiled template kept on disk between runs.

Preparing them (:func:`fonts.prepared`: the typst library scanned, fontTools imported, the
common faces subset) costs a rendering run ~0.6–1.5 s of CPU; loading them back costs ~5 ms.

Invariants:
- the cache is used only if it was made from the same inputs: its name is a digest of the
  typst library file (path, size, modification time), the fontTools version, Python's version
  and the source of this package (``fastpdf``), so a change of any of them misses;
- it is a pickle, so it is read only from a folder and a file this user owns that nobody else
  can write (``$XDG_CACHE_HOME/sealbill``, else ``~/.cache/sealbill``, created 0700); anything
  else, or a file that does not load, is ignored and the fonts are prepared as without it;
- it is written to a temporary file then renamed: a reader never sees half of it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
from pathlib import Path

from sealbill.documents.fastpdf import assets, fonts

CACHE_ENV = "SEALBILL_FONT_CACHE"  # "off" disables it; else a folder instead of the default


def prepared() -> dict[str, fonts.Style]:
    """:func:`fonts.prepared`, from the cache when it holds these inputs' fonts."""
    path = _path()
    if path is None:
        return fonts.prepared()
    styles = _load(path)
    if styles is not None:
        fonts.adopt(styles)
        return styles
    styles = fonts.prepared()
    _save(path, styles)
    return styles


def _folder() -> Path | None:
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sealbill"


def _path() -> Path | None:
    folder = _folder()
    if folder is None:
        return None
    try:
        library = assets._typst_library()
        info = library.stat()
        import fontTools
    except (assets.AssetError, OSError, ImportError):
        return None
    key = hashlib.sha256()
    for part in (str(library), str(info.st_size), str(info.st_mtime_ns), fontTools.version,
                 sys.version):
        key.update(part.encode() + b"\0")
    for source in sorted(Path(__file__).parent.glob("*.py")):  # this package's code
        key.update(source.read_bytes())
    return folder / f"fonts-{key.hexdigest()[:32]}.pickle"


def _owned(item: Path) -> bool:
    """Not a link, owned by this user, writable by nobody else."""
    info = item.lstat()
    return (not stat.S_ISLNK(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _load(path: Path) -> dict[str, fonts.Style] | None:
    try:
        if not (_owned(path.parent) and _owned(path)):
            return None
        styles = pickle.loads(path.read_bytes())
    except Exception:  # missing, unreadable, from another version: prepare them again
        return None
    if not (isinstance(styles, dict) and set(styles) == set(assets.FONT_NAMES)
            and all(isinstance(s, fonts.Style) for s in styles.values())):
        return None
    return styles


def _save(path: Path, styles: dict[str, fonts.Style]) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _owned(path.parent):
            return
        temp = path.with_name(f".{path.name}.{os.getpid()}.part")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(pickle.dumps(styles, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(temp, path)
    except OSError:  # a cache that cannot be written only costs the next run its time
        return
