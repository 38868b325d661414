"""Card numbers, IBANs, invisible characters, CSV formulas, output links and link bases."""

from __future__ import annotations

import itertools
import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from stdnum import luhn

from sealbill.inputs.accounts import AccountIn
from sealbill.inputs.secrets import has_card_number, has_iban, payment_secret_problem
from sealbill.inputs.text import BIDI_CONTROLS, INVISIBLE, TextProblem, clean_text
from sealbill.inputs.urls import link_base_problem
from sealbill.outputs.csv_cells import csv_text, neutralize
from sealbill.outputs.files import OutputError, output_folder, write_output

PAN = "4111111111111111"


@pytest.mark.parametrize("text", [
    PAN, "4111 1111 1111 1111", "4111-1111-1111-1111", "4111.1111.1111.1111",
    "card:4111111111111111!", "Amex 3782 822463 10005", "ref 41 11 11 11 11 11 11 11 end",
    "4111 1111 1111 1111 0", "6011-0009-9013-9424"])
def test_a_full_card_number_is_found_in_any_grouping(text: str) -> None:
    assert has_card_number(text)


@pytest.mark.parametrize("text", [
    "Visa •••• 4242", "+33 1 23 45 67 89", "75011 Paris", "4111 1111 1111 1112",
    "SIRET 732 829 320 00074", "order 2026-10-01"])
def test_masked_numbers_phones_and_dates_are_not_card_numbers(text: str) -> None:
    assert not has_card_number(text)


@pytest.mark.parametrize("text", [
    "FR7630006000011234567890189", "FR76 3000 6000 0112 3456 7890 189",
    "fr76-3000-6000-0112-3456-7890-189", "IBAN: DE89.3704.0044.0532.0130.00 merci",
    "GB82 WEST 1234 5698 7654 32"])
def test_an_iban_is_found_in_any_grouping_and_case(text: str) -> None:
    assert has_iban(text) and payment_secret_problem(text)


def test_a_wrong_iban_checksum_is_not_an_iban() -> None:
    assert not has_iban("FR76 3000 6000 0112 3456 7890 188")


@given(st.text(st.sampled_from("0123456789 -."), min_size=13, max_size=40))
def test_a_luhn_valid_digit_run_is_always_found(text: str) -> None:
    digits = "".join(ch for ch in text if ch.isdigit())
    separated = all(not (a in " -." and b in " -.") for a, b in itertools.pairwise(text))
    if separated and 13 <= len(digits) <= 19 and luhn.is_valid(digits) and text[0].isdigit() \
            and text[-1].isdigit():
        assert has_card_number(text)


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\u202e", "\u2066", "\u2069", "\u200b",
                                  "\u200d", "\ufeff", "\u2060"])
def test_invisible_and_reordering_characters_are_refused_naming_the_code_point(
        char: str) -> None:
    with pytest.raises(TextProblem, match=f"U\\+{ord(char):04X}"):
        clean_text(f"Nom{char}", max_length=50)


def test_text_is_stored_in_nfc_and_bounded() -> None:
    assert clean_text("  Cafe\u0301 ", max_length=10) == "Caf\u00e9"
    with pytest.raises(TextProblem, match="at most 3"):
        clean_text("abcd", max_length=3)
    with pytest.raises(TextProblem, match="at most 200"):
        clean_text("x" * 10_000_000, max_length=200)


@pytest.mark.parametrize("cell", ["=1+1", "+33", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_a_csv_cell_a_spreadsheet_would_run_is_written_as_text(cell: str) -> None:
    assert neutralize(cell) == "'" + cell
    assert csv_text(["h"], [[cell]]).splitlines()[1].lstrip('"').startswith("'")


def test_an_output_replaces_a_planted_link_instead_of_writing_through_it(
        tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.csv").symlink_to(victim)
    write_output(out / "report.csv", b"new", root=out)
    assert victim.read_text() == "precious"
    assert not (out / "report.csv").is_symlink() and (out / "report.csv").read_bytes() == b"new"


def test_a_linked_folder_below_the_named_one_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "fr").symlink_to(elsewhere)
    with pytest.raises(OutputError, match="symbolic link"):
        write_output(out / "fr" / "letter.md", b"x", root=out)
    assert not os.listdir(elsewhere)


def test_an_output_folder_that_is_a_file_or_unwritable_is_a_clear_error(
        tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        output_folder(tmp_path / "file")
    with pytest.raises(OutputError, match="is a folder"):
        write_output(tmp_path, b"x")


@pytest.mark.parametrize(("url", "ok"), [
    ("https://billing.example/verify", True), ("http://127.0.0.1:8080/v", True),
    ("http://localhost/v", True), ("http://billing.example/v", False),
    ("javascript:alert(1)", False), ("data:text/html,x", False), ("https:///nohost", False),
    ("https://user:pw@billing.example/", False), ("https://billing.example/\u202e", False),
    ("ftp://billing.example/", False)])
def test_only_https_links_or_loopback_http_are_mailed(url: str, ok: bool) -> None:
    assert (link_base_problem(url) is None) is ok


@settings(deadline=None)
@given(st.text(max_size=60))
def test_an_accepted_name_is_nfc_bounded_and_free_of_invisible_characters(name: str) -> None:
    record = {"reference": "R1", "name": name, "address_line1": "1 rue", "postcode": "75011",
              "city": "Paris", "country": "FR"}
    try:
        stored = AccountIn.model_validate(record).name
    except ValidationError as exc:
        assert all(error["loc"] == ("name",) for error in exc.errors())
        return
    assert stored == unicodedata.normalize("NFC", stored) and stored == stored.strip()
    assert stored and len(stored) <= 200
    assert not any(ch in BIDI_CONTROLS or ch in INVISIBLE or unicodedata.category(ch) == "Cc"
                   for ch in stored)
    assert not has_card_number(stored)
