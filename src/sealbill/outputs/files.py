"""Writing output files without following links planted in the output folder.

Invariants of :func:`write_output`:
- the folder the operator named (``root``) may itself be a symbolic link (they named it); no
  folder *below* it is followed if it is a link: it is refused;
- the file's bytes go to a fresh temporary file (``O_CREAT | O_EXCL``, so never an existing
  name or a link) in the target folder, then are renamed over the target name: a rename
  replaces a link planted at that name instead of writing through it;
- a problem (the path is a folder, a folder is not writable) is an :class:`OutputError` with
  the path and what to do, never a traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path sealbill cannot or will not write (bad usage: exit code 2)."""


def output_folder(root: Path, relative: str | Path = "") -> Path:
    """``root / relative`` created as real folders; a link below ``root`` is refused."""
    if root.exists() and not root.is_dir():
        raise OutputError(f"{root}: exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
        folder = root
        for part in Path(relative).parts:
            if part in ("..", "/"):
                raise OutputError(f"{relative}: climbs out of {root}")
            folder = folder / part
            if folder.is_symlink():
                raise OutputError(f"{folder}: is a symbolic link sealbill did not create; "
                                  "remove it or choose a fresh folder")
            folder.mkdir(exist_ok=True)
    except PermissionError as exc:
        raise OutputError(f"{exc.filename or root}: permission denied; choose a folder you "
                          "can write to") from None
    except FileExistsError as exc:
        raise OutputError(f"{exc.filename}: exists and is not a folder") from None
    except NotADirectoryError as exc:
        raise OutputError(f"{exc.filename or root}: a part of this path is a file, not a "
                          "folder") from None
    return folder


def check_writable(path: Path) -> None:
    """Raise :class:`OutputError` now if :func:`write_output` could not write ``path``: a
    command that writes its file after changing the database checks first, so a bad path
    changes nothing. (A probe file is created and removed in the folder.)"""
    folder = _folder_of(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".sealbill-probe.", suffix=".part")
    except PermissionError:
        raise OutputError(f"{folder}: permission denied; choose a folder you can write to"
                          ) from None
    os.close(fd)
    os.unlink(probe)


def _folder_of(path: Path) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{folder}: no such folder")
    return folder


def write_output(path: Path, data: bytes, *, root: Path | None = None) -> Path:
    """Write ``data`` at ``path`` (under ``root`` when given: its subfolders are checked)."""
    if root is not None:
        folder = output_folder(root, path.parent.relative_to(root))
    else:
        folder = _folder_of(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name[:40]}.", suffix=".part")
    except PermissionError:
        raise OutputError(f"{folder}: permission denied; choose a folder you can write to"
                          ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)  # replaces a link at ``path``, never writes through it
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
