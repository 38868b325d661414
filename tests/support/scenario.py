"""A small, real billing cycle for tests: an organization, accounts with one verified billing
contact each, a plan, subscriptions, a billed and finalized run, rendered documents.

Everything goes through the production code paths (import, bill, finalize, render); only the
sizes are small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.demo.seed import ORGANIZATION
from sealbill.domain.address_policy import allowable_reserved
from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period, period_bounds
from sealbill.pipeline.billing.render import render_run
from sealbill.pipeline.parties.accounts_import import import_accounts
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.parties import records as parties
from sealbill.store.schema import contacts, organizations


@dataclass
class Scenario:
    engine: Engine
    org_id: int
    org_slug: str
    run_id: int
    period: str
    files_dir: Path
    account_ids: dict[str, int] = field(default_factory=dict)
    contact_ids: dict[str, int] = field(default_factory=dict)
    invoice_ids: list[int] = field(default_factory=list)


def account_records(count: int, *, country: str = "FR") -> list[dict[str, Any]]:
    return [
        {"reference": f"A{i:04d}", "name": f"Client {i} SARL", "address_line1": f"{i} rue Test",
         "postcode": "75011", "city": "Paris", "country": country, "is_business": True,
         "currency": "EUR", "locale": "fr" if i % 2 else "en", "payment_kind": "card",
         "payment_display": f"Visa •••• {1000 + i}",
         "contacts": [{"email": f"billing{i}@client{i}.example", "role": "billing",
                       "verified": {"by": "test", "reason": "fixture"}}]}
        for i in range(1, count + 1)
    ]


# The fictitious domains the test suite's own contacts use besides its accounts' (a mandated
# accountant, a new provider, an outsider a test links on purpose...): listed exactly, as a
# deployment would list its fictitious demo domains. Reserved names outside this list, and
# example.com, localhost and the like, are refused in tests as anywhere else.
TEST_DOMAINS = (
    "accountant.example", "accountant.test", "acme.example", "acme.test", "attacker.example",
    "b.example", "bulk.example", "cabinet-compta.example", "cabinet-expert.example",
    "client.example", "d.example", "else.example", "evil.example", "nowhere.example",
    "one.test", "three.test", "two.test",
    *(f"client{i}.example" for i in range(1, 101)),
    *(f"new-provider-{i}.example" for i in range(1, 51)),
)


def allowed_domains(records: list[dict[str, Any]]) -> list[str]:
    """Exactly the reserved (.example/.test) domains the records' contacts use."""
    found = {str(c["email"]).rsplit("@", 1)[1].lower() for r in records
             for c in r.get("contacts", [])}
    return sorted(d for d in found if allowable_reserved(d))


def organization(slug: str, records: list[dict[str, Any]],
                 extra_domains: tuple[str, ...] = ()) -> dict[str, Any]:
    """The test organization: the demo's, with an allow-list of exactly the fictitious
    domains its records use (and ``extra_domains``, a test's own)."""
    base = ORGANIZATION["address_policy"]["allowed_reserved_domains"]
    return {**ORGANIZATION, "slug": slug, "address_policy": {"allowed_reserved_domains": sorted(
        {*base, *TEST_DOMAINS, *allowed_domains(records), *extra_domains})}}


def allow_domains(engine: Engine, org_id: int, *domains: str) -> None:
    """Add fictitious domains to an organization's allow-list (a test's outsider, say)."""
    with engine.begin() as conn:
        row = conn.execute(sa.select(organizations.c.address_policy)
                           .where(organizations.c.id == org_id)).scalar() or {}
        allowed = sorted({*row.get("allowed_reserved_domains", ()), *domains})
        conn.execute(sa.update(organizations).where(organizations.c.id == org_id)
                     .values(address_policy={**row, "allowed_reserved_domains": allowed}))


def seed_organization(engine: Engine, *, accounts: int = 3, period: str = "2026-10",
                      files_dir: Path, slug: str = "acme-cloud",
                      records: list[dict[str, Any]] | None = None,
                      extra_domains: tuple[str, ...] = ()) -> tuple[int, dict[str, int]]:
    """An organization with its plan, ``accounts`` accounts with their contacts, and their
    subscriptions; nothing billed. Returns (organization id, reference -> account id)."""
    start, _ = period_bounds(period)
    at = datetime.now(UTC)
    files_dir.mkdir(parents=True, exist_ok=True)
    records = records or account_records(accounts)
    with engine.begin() as conn:
        org_id = create_org(conn, organization(slug, records, extra_domains))
        plan = Plan("basic", "Basic", Interval.MONTH, "EUR", 1, date(2020, 1, 1), (
            Charge("base", ChargeModel.FLAT, "Abonnement", "Subscription",
                   ChargeProperties(amount=Decimal("19.90"))),))
        catalog_store.add_plan(conn, org_id, plan, at)
        path = files_dir / f"accounts-{slug}.json"
        path.write_text(json.dumps(records), encoding="utf-8")
        import_accounts(conn, org_id, path, actor="test")
        account_ids = parties.account_ids_by_reference(conn, org_id)
        catalog_store.add_subscriptions_bulk(conn, org_id, [
            {"account_id": account_id, "external_id": f"sub-{ref}", "plan_code": "basic",
             "started_on": start - timedelta(days=400)}
            for ref, account_id in sorted(account_ids.items())], at)
    return org_id, account_ids


def build_scenario(engine: Engine, *, accounts: int = 3, period: str = "2026-10",
                   files_dir: Path, slug: str = "acme-cloud", render: bool = True,
                   records: list[dict[str, Any]] | None = None,
                   extra_domains: tuple[str, ...] = ()) -> Scenario:
    start, _ = period_bounds(period)
    org_id, account_ids = seed_organization(engine, accounts=accounts, period=period,
                                            files_dir=files_dir, slug=slug, records=records,
                                            extra_domains=extra_domains)
    result = bill_period(engine, org_id, period, actor="test-runner")
    assert result.run_id is not None
    done = finalize_run(engine, org_id, result.run_id, issue_date=start)
    scenario = Scenario(engine, org_id, slug, result.run_id, period, files_dir,
                        account_ids=account_ids, invoice_ids=[i for i, _ in done])
    with engine.begin() as conn:
        rows = conn.execute(contacts.select().where(contacts.c.organization_id == org_id))
        scenario.contact_ids = {row.email: int(row.id) for row in rows}
    if render:
        render_run(engine, org_id, result.run_id, files_dir / "documents", workers=1)
    return scenario
