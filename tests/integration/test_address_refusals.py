"""Reserved, placeholder and own addresses are refused wherever an address is stored, with an
error that names the record and the field, and nothing written (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.mail.smtp import Outcome, SendResult
from sealbill.pipeline.parties import verify
from sealbill.pipeline.parties.accounts_import import ImportRejected, import_accounts
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.db import inserted_id
from sealbill.store.parties import records as parties
from sealbill.store.parties.address_rules import AddressRefused
from sealbill.store.schema import accounts, contact_links, contacts
from tests.support.scenario import account_records, build_scenario, organization


class _NeverSends:
    """A transport that records the mail it was given (none must be)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    def send(self, mail_from: str, rcpt_to: tuple[str, ...], data: bytes) -> SendResult:
        self.sent.append(rcpt_to)
        return SendResult(Outcome.SENT, "250")

    def close(self) -> None:
        return None


def test_the_import_names_each_refused_address_and_writes_nothing(any_engine: Engine,
                                                                  tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    records = account_records(4)[1:]
    records[0]["contacts"][0]["email"] = "test@example.com"
    records[1]["contacts"][0]["email"] = "billing@localhost"
    records[2]["contacts"][0]["email"] = "factures@acme-cloud.example"  # the sender itself
    path = tmp_path / "more.json"
    path.write_text(json.dumps(records))
    with pytest.raises(ImportRejected) as refused, any_engine.begin() as conn:
        import_accounts(conn, s.org_id, path, actor="ops")
    problems = refused.value.problems
    assert len(problems) == 3
    assert "record 0 (account 'A0002'): contacts[0].email: 'test@example.com'" in problems[0]
    assert "reserved_name" in problems[0] and "billing@localhost" in problems[1]
    assert "own_address" in problems[2]
    with any_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar() == 1


def test_contacts_links_and_changes_refuse_what_may_not_receive(any_engine: Engine,
                                                               tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=2, files_dir=tmp_path, render=False)
    a1 = s.account_ids["A0001"]
    with any_engine.begin() as conn:
        for bad in ("noreply@client1.example", "x@[127.0.0.1]", "x@unlisted.example"):
            with pytest.raises(AddressRefused, match="field 'email'"):
                parties.add_contact(conn, s.org_id, bad, actor="ops")
        with pytest.raises(AddressRefused, match="reserved_name"):
            parties.change_contact_email(conn, s.org_id, s.contact_ids[
                "billing1@client1.example"], "billing@example.org", actor="ops")
        own = parties.add_contact(conn, s.org_id, "ops@acme-cloud.example", actor="ops")
        with pytest.raises(AddressRefused, match="own_address"):
            parties.link_contact(conn, s.org_id, own, a1, "billing", actor="ops")
        conn.execute(sa.update(accounts).where(accounts.c.id == a1)
                     .values(is_internal_test=True))
        link = parties.link_contact(conn, s.org_id, own, a1, "billing", actor="ops")
        parties.set_link_status(conn, s.org_id, link, "verified", actor="ops",
                                method="operator", reason="our internal test account")


def test_no_verification_mail_to_a_placeholder_written_raw(any_engine: Engine,
                                                           tmp_path: Path) -> None:
    s = build_scenario(any_engine, accounts=1, files_dir=tmp_path, render=False)
    with any_engine.begin() as conn:
        contact = inserted_id(conn.execute(sa.insert(contacts).values(
            organization_id=s.org_id, email="no-reply@client1.example", name="",
            created_at=datetime.now(UTC))))
        conn.execute(sa.insert(contact_links).values(
            organization_id=s.org_id, contact_id=contact, account_id=s.account_ids["A0001"],
            role="billing", status="pending", status_changed_at=datetime.now(UTC),
            status_changed_by="raw"))
    transport = _NeverSends()
    with pytest.raises(AddressRefused, match="verification of A0001: field 'email'"):
        verify.start(any_engine, s.org_id, "no-reply@client1.example", "A0001", actor="ops",
                     transport=transport, signer=None, key=b"k" * 32)
    assert transport.sent == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"archive_email": "archive@localhost"}, "field 'archive_email'"),
    ({"address_policy": {"allowed_reserved_domains": ["example.com"]}},
     "allowed_reserved_domains"),
    ({"address_policy": {"allowed_reserved_domains": ["*.example"]}}, "no wildcard"),
])
def test_the_organization_refuses_a_bad_archive_or_allow_list(any_engine: Engine,
                                                              change: dict[str, object],
                                                              expected: str) -> None:
    values = {**organization("bad-org", account_records(1)), **change}
    with pytest.raises(ImportRejected) as refused, any_engine.begin() as conn:
        create_org(conn, values)
    assert any(expected in p for p in refused.value.problems), refused.value.problems
