"""The compiled template's prepared fonts, kept on disk between runs: used only when made from
the same inputs and safe to load, else prepared again."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from sealbill.documents.fastpdf import font_cache, fonts


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """The cache in ``tmp_path/cache``; how many times the fonts were prepared."""
    calls: list[int] = []
    real = fonts.prepared

    def prepared() -> dict[str, fonts.Style]:
        calls.append(1)
        return real()

    monkeypatch.setenv(font_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(fonts, "prepared", prepared)
    return calls


def _faces(styles: dict[str, fonts.Style]) -> dict[str, bytes]:
    return {name: style.primary.program for name, style in styles.items()}


def test_a_second_run_loads_the_fonts_the_first_prepared(counted: list[int],
                                                         tmp_path: Path) -> None:
    first = font_cache.prepared()
    second = font_cache.prepared()
    assert counted == [1]  # prepared once, then read back
    assert _faces(second) == _faces(first)
    [cached] = (tmp_path / "cache").iterdir()
    assert cached.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700


def test_a_cache_others_can_write_or_that_does_not_load_is_not_used(counted: list[int],
                                                                    tmp_path: Path) -> None:
    font_cache.prepared()
    [cached] = (tmp_path / "cache").iterdir()
    cached.chmod(0o666)
    font_cache.prepared()
    assert counted == [1, 1]  # group- and world-writable: prepared again
    cached.chmod(0o600)
    cached.write_bytes(pickle.dumps({"regular": "not a style"}))
    font_cache.prepared()
    cached.write_bytes(b"\x80garbage")
    font_cache.prepared()
    assert counted == [1, 1, 1, 1]


def test_the_cache_can_be_turned_off(counted: list[int], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(font_cache.CACHE_ENV, "off")
    font_cache.prepared()
    font_cache.prepared()
    assert counted == [1, 1] and not (tmp_path / "cache").exists()
