"""The README quick-start, as a user types it: a billing setup built from nothing with the CLI
only, two cycles delivered to a real SMTP server, the second with a prorated plan change."""

from __future__ import annotations

import json
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sealbill.cli import app
from tests.e2e.catalog_fixture import ACCOUNTS, CATALOG_YAML, ORG
from tests.support.smtp import SmtpCapture, smtp_server  # noqa: F401

PASSWORD = "correct horse battery staple"


class Cli:
    def __init__(self, db: str, env: dict[str, str]) -> None:
        self.db, self.env, self.runner = db, env, CliRunner()

    def __call__(self, *args: str, key: str | None = None, code: int = 0) -> Any:
        argv = [*args, "--db", self.db, "--json"] + (["--key", key] if key else [])
        result = self.runner.invoke(app, argv, env=self.env, catch_exceptions=False)
        assert result.exit_code == code, (args, result.output)
        return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture
def cli(tmp_path: Path, smtp_server: SmtpCapture) -> Cli:  # noqa: F811
    env = {"SEALBILL_DKIM": "off", "SEALBILL_SMTP_HOST": "127.0.0.1",
           "SEALBILL_SMTP_PORT": str(smtp_server.port),
           "SEALBILL_SMTP_TIMEOUT": "5", "SEALBILL_FILES_DIR": str(tmp_path / "files"),
           "SEALBILL_OPERATOR_PASSWORD": PASSWORD, "SEALBILL_API_KEY": ""}
    return Cli(f"sqlite:///{tmp_path / 'sealbill.sqlite'}", env)


def _code(message: bytes) -> str:
    text = message_from_bytes(message, policy=default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return str(text.split("Code : ", 1)[1].split()[0])


def test_a_billing_setup_built_from_nothing_with_the_cli_bills_sends_and_prorates(
        cli: Cli, tmp_path: Path, smtp_server: SmtpCapture) -> None:  # noqa: F811
    org_file = tmp_path / "org.json"
    org_file.write_text(json.dumps(ORG))
    cli("organizations", "create", "-f", str(org_file))
    taken = cli("organizations", "create", "-f", str(org_file), code=2)
    assert "taken" in taken["error"]

    for email in ("alice@acme.example", "bob@acme.example"):
        cli("operators", "create", "--email", email, "--name", email.split("@")[0])
    alice = cli("keys", "create", "--org", "acme", "--operator", "alice@acme.example",
                "--role", "admin")["key"]
    bob = cli("keys", "create", "--org", "acme", "--operator", "bob@acme.example",
              "--role", "approver")["key"]
    assert alice.startswith("sbk_") and bob.startswith("sbk_")

    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG_YAML)
    preview = cli("apply", "-f", str(catalog), "--org", "acme", "--dry-run", key=alice)
    assert (preview["create"], preview["applied"]) == (3, False)
    assert cli("plans", "list", "--org", "acme", key=alice) == []
    assert cli("apply", "-f", str(catalog), "--org", "acme", key=alice)["create"] == 3
    again = cli("apply", "-f", str(catalog), "--org", "acme", key=alice)
    assert (again["create"], again["change"], again["unchanged"]) == (0, 0, 3)

    for account in ACCOUNTS:
        sets = [x for k, v in account.items() if k not in ("reference", "name")
                for x in ("--set", f"{k}={v}")]
        cli("accounts", "create", account["reference"], "--org", "acme", "--name",
            account["name"], *sets, key=alice)
    cli("contacts", "add", "ap@client-un.fr", "--account", "C001", "--org", "acme",
        key=alice)
    cli("contacts", "add", "ap@client-deux.fr", "--account", "C002", "--org", "acme",
        key=alice)
    cli("contacts", "verify", "ap@client-un.fr", "--account", "C001", "--org", "acme",
        "--files-dir", str(tmp_path / "files"))
    cli("contacts", "confirm", "--org", "acme", "--code", _code(smtp_server.accepted[-1].data),
        "--files-dir", str(tmp_path / "files"))
    cli("contacts", "vouch", "ap@client-deux.fr", "--account", "C002", "--org", "acme",
        "--reason", "confirmed by phone with the CFO", key=alice)
    listed = cli("contacts", "list", "--org", "acme", "--history", key=alice)
    assert {c["links"][0]["status"] for c in listed} == {"verified"}
    verified_by = {c["email"]: c["links"][0]["verification_method"] for c in listed}
    assert verified_by == {"ap@client-un.fr": "email_token",
                           "ap@client-deux.fr": "operator"}

    for ref in ("C001", "C002"):
        cli("subscriptions", "create", "--org", "acme", "--account", ref, "--plan", "starter",
            "--start", "2026-10-01", "--external-id", f"sub-{ref}", key=alice)
    for event_id, ref, value in (("e1", "C001", "5000"), ("e2", "C002", "1000"),
                                 ("e-bad", "C002", "99999999")):
        cli("usage", "record", "--org", "acme", "--event-id", event_id, "--account", ref,
            "--metric", "api_calls", "--timestamp", "2026-10-05T10:00:00+00:00",
            "--value", value, key=alice)
    voided = cli("usage", "void", "e-bad", "--org", "acme", "--reason", "client resent a "
                 "counter reset", key=alice)
    assert voided["voided_by"] == "operator:alice@acme.example"

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"first_cycle": "hold"}))
    _cycle(cli, "2026-11", alice, bob, policy)
    first = cli("invoices", "list", "--org", "acme", "--run", "2026-11", key=alice)
    totals = {i["account_reference"]: i["total_excl_minor"] for i in first["items"]}
    assert totals == {"C001": 3500, "C002": 3100}  # 30 + 5 000 × 0.001; the void row unrated
    assert sorted(r.lower() for m in smtp_server.accepted[1:] for r in m.rcpt_tos) == [
        "ap@client-deux.fr", "ap@client-un.fr"]
    pdf = tmp_path / "first.pdf"
    cli("invoices", "download", first["items"][0]["number"], "--org", "acme", "--out",
        str(pdf), key=alice)
    assert pdf.read_bytes().startswith(b"%PDF")

    cli("subscriptions", "change-plan", "sub-C001", "--org", "acme", "--plan", "pro",
        "--on", "2026-11-16", key=alice)
    _cycle(cli, "2026-12", alice, bob, None)
    second = cli("invoices", "list", "--org", "acme", "--run", "2026-12", key=alice)
    c001 = next(i for i in second["items"] if i["account_reference"] == "C001")
    shown = cli("invoices", "show", c001["number"], "--org", "acme", key=alice)
    amounts = sorted(line["amount_minor"] for line in shown["lines"])
    # December on Pro in advance, 15 days of Pro charged, 15 unused days of Starter credited.
    assert amounts == [-1500, 4500, 9000] and c001["total_excl_minor"] == 12000
    assert len(smtp_server.accepted) == 5

    log = cli("audit", "list", "--org", "acme", "--action", "run.approve", key=alice)
    assert [e["actor"] for e in log["items"]] == ["operator:bob@acme.example"]


def _stage(output: dict[str, Any], count: str | None = None) -> None:
    """``--json`` gives the stage's figures: seconds, CPU seconds, items, items per second."""
    figures = output["stage"]
    assert set(figures) == {"seconds", "cpu_seconds", "items", "per_second"}, figures
    assert figures["items"] >= 1 and figures["seconds"] > 0 and figures["cpu_seconds"] >= 0
    if count:
        assert figures["items"] == output[count], (count, output)


def _cycle(cli: Cli, period: str, alice: str, bob: str, policy: Path | None) -> None:
    _stage(cli("run", "bill", "--org", "acme", "--period", period, key=alice))
    _stage(cli("run", "finalize", period, "--org", "acme"), "finalized")
    _stage(cli("documents", "render", period, "--org", "acme", "--workers", "1"), "rendered")
    extra = ["--policy", str(policy)] if policy else []
    planned = CliRunner().invoke(app, ["run", "plan", period, "--org", "acme", "--db", cli.db,
                                       "--json", *extra], env=cli.env)
    _stage(json.loads(planned.stdout))
    if policy is not None:
        assert planned.exit_code == 3, planned.output  # held for a first-cycle approval (exit 3)
        refused = cli("run", "approve", period, "--org", "acme", "--reason", "looks right",
                      key=alice, code=1)
        assert "cannot approve" in refused["error"]
    if planned.exit_code == 3:
        cli("run", "approve", period, "--org", "acme", "--reason", "checked the diff",
            key=bob)
    _stage(cli("run", "send", period, "--org", "acme"))
