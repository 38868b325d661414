"""No DKIM key: nothing is sent unless SEALBILL_DKIM=off says so, and `run plan` tells which;
`dkim dns-record` prints the TXT record that publishes the key."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from sealbill.cli import app
from sealbill.mail.dkim import generate_key
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from tests.support.scenario import build_scenario


def test_without_a_key_sending_is_refused_unless_unsigned_is_configured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    upgrade(engine)
    run_id = build_scenario(engine, accounts=1, files_dir=tmp_path / "files").run_id
    engine.dispose()
    monkeypatch.delenv("SEALBILL_DKIM_KEY", raising=False)
    monkeypatch.delenv("SEALBILL_DKIM", raising=False)
    monkeypatch.setenv("SEALBILL_SMTP_PORT", "9")  # nothing listens: nothing may be tried
    runner = CliRunner()
    planned = runner.invoke(app, ["run", "plan", str(run_id), "--org", "acme-cloud", "--db",
                                  url, "--json"])
    assert json.loads(planned.stdout)["signing"].startswith("DKIM: REFUSED")
    sent = runner.invoke(app, ["run", "send", str(run_id), "--org", "acme-cloud", "--db", url])
    assert sent.exit_code == 2 and "SEALBILL_DKIM=off" in " ".join(sent.output.split())
    monkeypatch.setenv("SEALBILL_DKIM", "off")
    planned = runner.invoke(app, ["run", "plan", str(run_id), "--org", "acme-cloud", "--db",
                                  url])
    assert "DKIM: UNSIGNED" in planned.output


def test_the_dns_record_publishes_the_public_key_of_the_configured_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = generate_key(tmp_path / "dkim.pem")
    monkeypatch.setenv("SEALBILL_DKIM_KEY", str(tmp_path / "dkim.pem"))
    result = CliRunner().invoke(app, ["dkim", "dns-record", "--selector", "s2026",
                                      "--domain", "acme.example"])
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith("s2026._domainkey.acme.example. 3600 IN TXT ( \"v=DKIM1; k=rsa; p=")
    parts = re.findall(r'"([^"]*)"', line)
    assert all(len(part) <= 255 for part in parts)
    published = "".join(parts).split("p=", 1)[1]
    public = serialization.load_pem_private_key(pem, None).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode(published) == public
    missing = CliRunner().invoke(app, ["dkim", "dns-record", "--key", str(tmp_path / "nope")])
    assert missing.exit_code == 2
