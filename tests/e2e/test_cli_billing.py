"""The CLI as an operator uses it: JSON output, exit codes, errors that name the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.scenario import account_records, allowed_domains

ORG = {
    "slug": "acme", "legal_name": "Acme SAS", "address_line1": "1 rue A", "postcode": "75001",
    "city": "Paris", "country": "FR", "siren": "732829320", "vat_id": "FR44732829320",
    "legal_info": "SAS au capital de 1 000 € — RCS Paris 732 829 320",
    "iban": "FR7630006000011234567890189", "invoice_series": "F-", "default_locale": "fr",
    "default_currency": "EUR", "sender_email": "billing@acme.example",
    "sender_name": "Acme billing",
    # the fixture's fictitious customer domains, listed exactly (address policy)
    "address_policy": {"allowed_reserved_domains": ["acme.example",
                                                    *allowed_domains(account_records(3))]},
}


def sealbill(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealbill", *args, "--db", db],
                          capture_output=True, text=True, timeout=120)


def test_operator_initializes_imports_and_lists_accounts_as_json(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    (tmp_path / "org.json").write_text(json.dumps(ORG))
    init = sealbill(db, "init", "--organization", str(tmp_path / "org.json"), "--json")
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["ok"] is True
    (tmp_path / "accounts.json").write_text(json.dumps(account_records(3)))
    imported = sealbill(db, "import", "accounts", str(tmp_path / "accounts.json"),
                        "--org", "acme", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout) == {"ok": True, "accounts": 3, "contacts": 3,
                                           "verified": 3}
    listed = sealbill(db, "invoices", "list", "--org", "acme", "--json")
    assert listed.returncode == 0
    assert json.loads(listed.stdout) == {"items": [], "next_cursor": None}  # a page


def test_bad_account_file_lists_every_problem_and_imports_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    (tmp_path / "org.json").write_text(json.dumps(ORG))
    assert sealbill(db, "init", "--organization", str(tmp_path / "org.json")).returncode == 0
    records = account_records(3)
    records[1]["vat_id"] = "FR00123"
    records[2]["payment_display"] = "4111 1111 1111 1111"
    (tmp_path / "a.json").write_text(json.dumps(records))
    result = sealbill(db, "import", "accounts", str(tmp_path / "a.json"), "--org", "acme",
                      "--json")
    assert result.returncode == 2
    problems = json.loads(result.stdout)["details"]
    assert any("a.json: record 1 (account 'A0002'): field 'vat_id'" in p for p in problems)
    assert any("a.json: record 2 (account 'A0003'): field 'payment_display'" in p
               for p in problems)
    listed = sealbill(db, "invoices", "list", "--org", "acme", "--json")
    assert listed.returncode == 0


def test_bad_period_is_a_usage_error_with_exit_code_2(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    (tmp_path / "org.json").write_text(json.dumps(ORG))
    assert sealbill(db, "init", "--organization", str(tmp_path / "org.json")).returncode == 0
    result = sealbill(db, "run", "bill", "--org", "acme", "--period", "2026-13")
    assert result.returncode == 2
    assert "period" in result.stderr
    unknown_option = sealbill(db, "run", "bill", "--org", "acme", "--nope")
    assert unknown_option.returncode == 2
