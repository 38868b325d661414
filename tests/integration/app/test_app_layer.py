"""Use cases of the application layer on real databases: what the CLI and the API rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from sealbill.app import apply, contacts, ids, invoices, operators, organizations, runs, usage
from sealbill.app.context import Actor, local_actor
from sealbill.app.errors import Forbidden, Invalid, NotFound, Unauthenticated
from sealbill.store.db import create_engine
from sealbill.store.migrate import upgrade
from sealbill.store.schema import audit_log
from sealbill.store.schema import invoices as invoice_table
from tests.e2e.catalog_fixture import CATALOG_YAML
from tests.integration.api.world import build_org
from tests.support.scenario import build_scenario

ROOT = local_actor()


def test_invoice_pages_reach_every_invoice_however_small_the_page(sqlite_engine: Engine,
                                                                  tmp_path: Path) -> None:
    scenario = build_scenario(sqlite_engine, accounts=5, files_dir=tmp_path, render=False)
    seen, cursor, pages = [], None, 0
    while True:
        page = invoices.list_invoices(sqlite_engine, ROOT, scenario.org_id, limit=2,
                                      cursor=cursor)
        seen += [item["number"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    with sqlite_engine.begin() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(invoice_table)).scalar()
    assert pages == 3 and len(seen) == len(set(seen)) == total == 5


@pytest.mark.parametrize("size", [1, 2, 5])
def test_subscription_and_webhook_pages_reach_every_row_however_small_the_page(
        sqlite_engine: Engine, tmp_path: Path, size: int) -> None:
    from sealbill.app import subscriptions, webhooks

    scenario = build_scenario(sqlite_engine, accounts=5, files_dir=tmp_path, render=False)
    webhooks.add_endpoint(sqlite_engine, ROOT, scenario.org_id, "https://93.184.216.34/h",
                          ["*"])
    with sqlite_engine.begin() as conn:
        for n in range(5):
            webhooks.emit(conn, scenario.org_id, "run.held", f"held:{n}", {"n": n})

    def walk(read: object) -> tuple[list[str], int]:
        seen, cursor, pages = [], None, 0
        while True:
            page = read(cursor)  # type: ignore[operator]
            seen += [item.get("id") or item["msg_id"] for item in page["items"]]
            pages, cursor = pages + 1, page["next_cursor"]
            if cursor is None:
                return seen, pages

    subs, pages = walk(lambda c: subscriptions.page_subscriptions(
        sqlite_engine, ROOT, scenario.org_id, limit=size, cursor=c))
    assert len(subs) == len(set(subs)) == 5 and pages == -(-5 // size)  # no empty last page
    messages, _ = walk(lambda c: webhooks.messages(sqlite_engine, ROOT, scenario.org_id,
                                                   limit=size, cursor=c))
    assert len(messages) == len(set(messages)) == 5


def test_a_voided_event_is_kept_but_never_rated(any_engine: Engine) -> None:
    org = build_org(any_engine, "alpha", 1)  # bills 2026-11 with one event of 10 calls
    extra = usage.record(any_engine, ROOT, org.org_id, {
        "event_id": "huge", "account": org.ids["account_id"], "metric": "api_calls",
        "timestamp": "2026-11-20T00:00:00Z", "value": "1000000"})
    usage.record(any_engine, ROOT, org.org_id, {
        "event_id": "small", "account": org.ids["account_id"], "metric": "api_calls",
        "timestamp": "2026-11-21T00:00:00Z", "value": "2000"})
    usage.void(any_engine, ROOT, org.org_id, extra["id"], {"reason": "counter reset"})
    with pytest.raises(Exception, match="already voided"):
        usage.void(any_engine, ROOT, org.org_id, "huge", {"reason": "again"})
    runs.start(any_engine, ROOT, org.org_id, "2026-12")
    page = invoices.list_invoices(any_engine, ROOT, org.org_id, run="2026-12")
    assert [i["total_excl_minor"] for i in page["items"]] == [3000 + 200]  # 2 000 × 0.001
    listed = usage.list_events(any_engine, ROOT, org.org_id)["items"]
    voided = [e for e in listed if e["event_id"] == "huge"]
    assert voided[0]["void_reason"] == "counter reset" and voided[0]["value"] == "1000000"


def test_apply_refuses_to_rewrite_a_stored_price_version_and_names_it(sqlite_engine: Engine
                                                                      ) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    changed = CATALOG_YAML.replace('amount: "30.00"', 'amount: "31.00"')
    with pytest.raises(Invalid) as refused:
        apply.apply(sqlite_engine, ROOT, org.org_id, changed, dry_run=True)
    assert [p.field for p in refused.value.problems] == ["plans[0].prices[0]"]
    newer = CATALOG_YAML.replace("  - code: pro", """      - effective_from: 2027-01-01
        charges:
          - {code: base, model: flat, description_fr: A, description_en: A, amount: "32"}
  - code: pro""")
    preview = apply.apply(sqlite_engine, ROOT, org.org_id, newer, dry_run=True)
    assert [(c["code"], c["action"]) for c in preview["changes"]] == [
        ("api_calls", "unchanged"), ("starter", "change"), ("pro", "unchanged")]
    assert apply.apply(sqlite_engine, ROOT, org.org_id, newer, dry_run=False)["change"] == 1
    assert apply.apply(sqlite_engine, ROOT, org.org_id, newer, dry_run=True)["change"] == 0


def test_a_changed_address_must_be_verified_again(sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    moved = contacts.change_address(sqlite_engine, ROOT, org.org_id, org.ids["contact_id"],
                                    "New.Box@Alpha-Billing.fr")
    assert moved["email"] == "New.Box@alpha-billing.fr"
    assert [link["status"] for link in moved["links"]] == ["pending"]
    history = contacts.show(sqlite_engine, ROOT, org.org_id, moved["id"])["history"]
    assert [e["event"] for e in history][-2:] == ["address_changed", "pending"]


def test_approval_needs_an_authenticated_operator_other_than_the_starter(
        sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    billing, _ = operators.authenticate(sqlite_engine, org.keys["billing"], "cli")
    approver, _ = operators.authenticate(sqlite_engine, org.keys["approver"], "cli")
    run = runs.start(sqlite_engine, billing, org.org_id, "2026-12")["run_id"]
    with pytest.raises(Unauthenticated):
        runs.approve(sqlite_engine, ROOT, org.org_id, run, "a local user is nobody")
    same = Actor(billing.name, "approver", org.org_id, billing.operator_id, "x", "cli")
    with pytest.raises(Forbidden, match="cannot approve"):
        runs.approve(sqlite_engine, same, org.org_id, run, "my own run")
    with pytest.raises(Exception, match="no delivery plan"):  # past identity: the run's state
        runs.approve(sqlite_engine, approver, org.org_id, run, "someone else")


def test_an_operator_signs_in_with_password_and_totp_only(sqlite_engine: Engine) -> None:
    made = operators.create_operator(sqlite_engine, ROOT, "Ops@Acme.example", "Ops",
                                     "a long enough password")
    code = pyotp.TOTP(made["totp_secret"]).now()
    who = operators.login(sqlite_engine, "Ops@ACME.example", "a long enough password", code)
    assert who["email"] == "Ops@acme.example"
    for password, totp in (("wrong password!!", code), ("a long enough password", "000000")):
        with pytest.raises(Unauthenticated):
            operators.login(sqlite_engine, "Ops@acme.example", password, totp)


def test_a_slug_taken_is_a_conflict_and_writes_nothing(sqlite_engine: Engine) -> None:
    build_org(sqlite_engine, "alpha", 1)
    with sqlite_engine.begin() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar()
    from tests.e2e.catalog_fixture import ORG

    with pytest.raises(Exception, match="taken"):
        organizations.create(sqlite_engine, ROOT, {**ORG, "slug": "alpha"})
    with sqlite_engine.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar() == \
            before


@pytest.fixture(scope="module")
def id_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('ids') / 'ids.sqlite'}")
    upgrade(engine)
    return engine


@settings(max_examples=200, deadline=None)
@given(org=st.integers(1, 2**32 - 1), row=st.integers(1, 2**63 - 1),
       kind=st.sampled_from(sorted(ids.KINDS)), other=st.integers(1, 2**32 - 1))
def test_public_ids_decode_only_for_their_organization_and_kind(
        id_engine: Engine, org: int, row: int, kind: str, other: int) -> None:
    with id_engine.begin() as conn:
        public = ids.encode(conn, org, kind, row)
        assert ids.decode(conn, org, kind, public) == row
        assert str(row) not in public.split("_", 1)[1] or row < 1000  # no counter shows
        if other != org:
            with pytest.raises(NotFound):
                ids.decode(conn, other, kind, public)
        wrong = "audit" if kind != "audit" else "plan"
        with pytest.raises(NotFound):
            ids.decode(conn, org, wrong, ids.KINDS[wrong][1] + public[public.index("_"):])


def test_audit_rows_name_the_time_actor_and_change(sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)
    with sqlite_engine.begin() as conn:
        row = conn.execute(sa.select(audit_log).where(
            audit_log.c.action == "usage.record")).one()
    assert row.actor == "local:" + ROOT.name.split(":", 1)[1]
    assert row.after["event_id"] == "ev-alpha" and row.at <= datetime.now(UTC)
    assert org.ids["usage_id"] == row.object_id


def test_a_session_needs_password_totp_and_a_role_and_keeps_the_four_eyes_identity(
        sqlite_engine: Engine) -> None:
    from sealbill.app import sessions

    org = build_org(sqlite_engine, "alpha", 1)
    made = operators.create_operator(sqlite_engine, ROOT, "carol@ops.example", "Carol",
                                     "a long enough password")
    code = pyotp.TOTP(made["totp_secret"]).now()
    with pytest.raises(Unauthenticated):  # no role in the organization yet
        sessions.sign_in(sqlite_engine, "carol@ops.example", "a long enough password", code,
                         "alpha")
    sessions.grant(sqlite_engine, ROOT, org.org_id, "carol@ops.example", "billing")
    token, actor = sessions.sign_in(sqlite_engine, "carol@ops.example",
                                    "a long enough password", code, "alpha")
    assert sessions.session_actor(sqlite_engine, token) == actor
    assert (actor.name, actor.role, actor.org_id) == ("operator:carol@ops.example", "billing",
                                                      org.org_id)
    run = runs.start(sqlite_engine, actor, org.org_id, "2026-12")["run_id"]
    sessions.grant(sqlite_engine, ROOT, org.org_id, "carol@ops.example", "approver")
    key = operators.create_key(sqlite_engine, ROOT, org.org_id, "carol@ops.example",
                               "approver")["key"]
    by_key, _ = operators.authenticate(sqlite_engine, key, "api")
    with pytest.raises(Forbidden, match="cannot approve"):  # same person, another door
        runs.approve(sqlite_engine, by_key, org.org_id, run, "my own run")
    sessions.sign_out(sqlite_engine, token)
    with pytest.raises(Unauthenticated):
        sessions.session_actor(sqlite_engine, token)


def test_an_accounts_file_is_imported_with_its_audit_entry_or_refused_whole(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    import json

    from sealbill.app import accounts as app_accounts
    from sealbill.app import audit
    from tests.support.scenario import account_records

    org = build_org(sqlite_engine, "alpha", 1)
    records = account_records(3)
    for i, record in enumerate(records):
        record["reference"] = f"IMP{i}"
        record["contacts"] = [{"email": f"ap@imp{i}-billing.fr", "role": "billing"}]
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(records), encoding="utf-8")
    bad.write_text(json.dumps([*records[:2], {**records[2], "country": "Atlantis"}]),
                   encoding="utf-8")
    reader = operators.authenticate(sqlite_engine, org.keys["read-only"], "cli")[0]
    with pytest.raises(Forbidden):
        app_accounts.import_file(sqlite_engine, reader, org.org_id, good)
    with pytest.raises(Invalid) as refused:
        app_accounts.import_file(sqlite_engine, ROOT, org.org_id, bad)
    assert any("country" in str(p) for p in refused.value.problems)
    assert audit.entries(sqlite_engine, ROOT, org.org_id,
                         action="accounts.import")["items"] == []
    counts = app_accounts.import_file(sqlite_engine, ROOT, org.org_id, good)
    assert counts["accounts"] == 3
    [entry] = audit.entries(sqlite_engine, ROOT, org.org_id, action="accounts.import")["items"]
    assert entry["after"]["accounts"] == 3 and entry["after"]["file"] == "good.json"
    listed = app_accounts.list_accounts(sqlite_engine, ROOT, org.org_id, limit=1000)["items"]
    assert {"IMP0", "IMP1", "IMP2"} <= {a["reference"] for a in listed}


def test_run_pages_follow_the_periods_to_the_end(sqlite_engine: Engine) -> None:
    org = build_org(sqlite_engine, "alpha", 1)  # its run of 2026-11
    for period in ("2026-12", "2027-01"):
        runs.start(sqlite_engine, ROOT, org.org_id, period)
    first = runs.page_runs(sqlite_engine, ROOT, org.org_id, limit=2)
    assert [r["period"] for r in first["items"]] == ["2026-11", "2026-12"]
    rest = runs.page_runs(sqlite_engine, ROOT, org.org_id, limit=2,
                          cursor=first["next_cursor"])
    assert [r["period"] for r in rest["items"]] == ["2027-01"] and rest["next_cursor"] is None


def test_exchange_rates_are_imported_with_their_audit_entry_by_the_roles_that_may(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    from sealbill.app import audit

    org = build_org(sqlite_engine, "alpha", 1)
    path = tmp_path / "rates.csv"
    path.write_text("currency,date,rate,source\nJPY,2026-10-30,162.5,BCE\n")
    reader = operators.authenticate(sqlite_engine, org.keys["read-only"], "cli")[0]
    with pytest.raises(Forbidden):
        invoices.import_rates(sqlite_engine, reader, org.org_id, path)
    assert invoices.import_rates(sqlite_engine, ROOT, org.org_id, path) == {
        "imported": 1, "duplicates": 0}
    [entry] = audit.entries(sqlite_engine, ROOT, org.org_id,
                            action="exchange_rates.import")["items"]
    assert entry["object_id"] == "alpha" and entry["after"]["imported"] == 1
