"""The demo removes only what it created: a folder without its marker is never emptied."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealbill.demo.cycle import MARKER, DemoFolderError, prepare_workdir


def test_a_folder_with_someone_elses_files_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(DemoFolderError, match="did not create"):
        prepare_workdir(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
    assert not (tmp_path / MARKER).exists()


def test_an_earlier_demo_folder_loses_only_the_demos_files(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    prepare_workdir(demo)
    (demo / "sealbill.sqlite").write_text("old database")
    (demo / "files").mkdir()
    (demo / "files" / "F-1.pdf").write_text("old pdf")
    (demo / "notes.txt").write_text("mine")
    prepare_workdir(demo)
    assert sorted(p.name for p in demo.iterdir()) == [MARKER, "notes.txt"]


def test_a_new_or_empty_folder_is_used(tmp_path: Path) -> None:
    prepare_workdir(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    prepare_workdir(tmp_path / "empty")
    assert (tmp_path / "new" / MARKER).is_file() and (tmp_path / "empty" / MARKER).is_file()


def test_a_link_named_as_the_demo_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(DemoFolderError):
        prepare_workdir(tmp_path / "link")
