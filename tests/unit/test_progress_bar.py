"""The progress bar of the stage commands shows the count, the rate and the ETA."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from sealbill.cli import common


def test_the_bar_shows_count_rate_elapsed_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=out, width=160, force_terminal=False))
    with common.progress(True, "rendering", None) as bar:
        bar.total(400)
        for _ in range(4):
            time.sleep(0.05)
            bar.advance(50)
    text = out.getvalue()
    assert "rendering" in text and "200/400" in text, text
    assert "/s" in text and "-/s" not in text and "ETA" in text, text
    figures = bar.figures()
    assert figures["items"] == 200 and figures["seconds"] >= 0.2
    assert 0 < figures["per_second"] <= 1000


def test_with_json_there_is_no_bar_but_the_figures_are_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=out, width=160))
    with common.progress(False, "sending", 10) as bar:
        bar.advance(10)
    assert out.getvalue() == "" and bar.figures()["items"] == 10
