"""A small world for incident tests: an organization, customers with a contact history, and
ledger rows written the way the sender would have written them.

Contacts and links go through :mod:`sealbill.store.parties.records` (so ``contact_events`` is real);
ledger rows are appended through :mod:`sealbill.store.delivery.ledger`, as the sender appends them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.store.delivery import ledger
from sealbill.store.parties import records as parties
from sealbill.store.schema import contact_links

T0 = datetime(2026, 5, 14, 11, 35, tzinfo=UTC)  # the seed's first misdirected mail (13:35 CEST)
CATEGORIES = ["account_reference", "admin_email", "amount", "payment_method", "postal_address"]
_numbers = itertools.count(1)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def create_org(conn: Connection, slug: str = "acme", *, dpo: bool = True) -> int:
    values: dict[str, Any] = dict(
        slug=slug, legal_name=f"{slug.title()} Cloud SAS", address_line1="1 rue de la Paix",
        postcode="75002", city="Paris", country="FR", invoice_series="F2026-",
        default_locale="fr", default_currency="EUR", sender_email=f"billing@{slug}.test",
        sender_name=f"{slug.title()} billing", archive_email=f"archive@{slug}.test",
        website=f"https://{slug}.test", created_at=at(-100_000),
        # the fictitious domains of this world, listed exactly (address policy)
        address_policy={"allowed_reserved_domains": [
            f"{slug}.test", "one.test", "two.test", "three.test", "accountant.test",
            "customer1.test", "customer2.test", "customer3.test", "stranger.test",
            "elsewhere.test", "x.test", "accountants.test", "seller.test",
            *(f"customer{i}.test" for i in range(4, 41))]})
    if dpo:
        values.update(dpo_name="Dana Protect", dpo_email=f"dpo@{slug}.test")
    return parties.create_organization(conn, **values)


@dataclass
class World:
    engine: Engine
    org_id: int
    accounts: dict[str, int] = field(default_factory=dict)
    contacts: dict[str, int] = field(default_factory=dict)

    def account(self, reference: str, country: str = "FR", *, business: bool = True) -> int:
        with self.engine.begin() as conn:
            account_id = parties.create_account(
                conn, self.org_id, reference=reference, name=f"Customer {reference}",
                address_line1="2 avenue X", postcode="10000", city="Town", country=country,
                is_business=business, currency="EUR", locale="fr", created_at=at(-50_000))
        self.accounts[reference] = account_id
        return account_id

    def verified_contact(self, email: str, *references: str, when: datetime | None = None,
                         role: str = "billing") -> int:
        when = when or at(-40_000)
        with self.engine.begin() as conn:
            contact_id = parties.add_contact(conn, self.org_id, email, actor="import", at=when)
            for reference in references:
                link_id = parties.link_contact(conn, self.org_id, contact_id,
                                               self.accounts[reference], role, actor="import",
                                               at=when)
                parties.set_link_status(conn, self.org_id, link_id, "verified",
                                        actor="customer", method="email_token", at=when)
        self.contacts[email] = contact_id
        return contact_id

    def migrate_links_silently(self, pairs: dict[str, str]) -> None:
        """The bad migration: rewrites contact_links in place, leaving no contact event."""
        with self.engine.begin() as conn:
            for reference, email in pairs.items():
                conn.execute(sa.update(contact_links).where(
                    contact_links.c.organization_id == self.org_id,
                    contact_links.c.account_id == self.accounts[reference],
                    contact_links.c.role == "billing").values(contact_id=self.contacts[email]))

    def migrate_links_through_events(self, pairs: dict[str, str], when: datetime) -> None:
        """A bad migration that used the normal functions: its wrong links look verified."""
        with self.engine.begin() as conn:
            for reference, email in pairs.items():
                link_id = parties.link_contact(conn, self.org_id, self.contacts[email],
                                               self.accounts[reference], "billing",
                                               actor="migration", at=when)
                parties.set_link_status(conn, self.org_id, link_id, "verified", actor="migration",
                                        method="operator", reason="migration 0042", at=when)

    def sent(self, reference: str, emails: list[str], when: datetime, *, run_id: int = 1,
             categories: list[str] | None = None) -> str:
        """A ledger row: the message for ``reference``'s invoice went to ``emails``."""
        recipients = [{"contact_id": self.contacts.get(email), "email": email}
                      for email in emails]
        with self.engine.begin() as conn:
            return ledger_row(conn, self.org_id, self.accounts[reference], reference,
                              recipients, when, run_id=run_id,
                              categories=categories or CATEGORIES)


def ledger_row(conn: Connection, org_id: int, account_id: int, reference: str,
               recipients: list[dict[str, Any]], when: datetime, *, run_id: int,
               categories: list[str]) -> str:
    number = next(_numbers)
    message_id = f"<{number}.{reference}@sealbill.test>"
    digest = hashlib.sha256(json.dumps([message_id, recipients]).encode()).hexdigest()
    ledger.append(conn, org_id, ledger.LedgerEntry(
        message_id=message_id, run_id=run_id, account_id=account_id,
        account_reference=reference, invoice_id=number, invoice_number=f"F2026-{number:05d}",
        recipients=recipients, data_categories=categories, attachment_sha256=digest,
        body_sha256=digest, queued_at=when - timedelta(seconds=5), sent_at=when))
    return message_id


def swapped_world(engine: Engine, slug: str = "acme", *, dpo: bool = True) -> World:
    """Four customers in FR, DE, BE; an accountant verified on two of them; then a run whose
    contacts for ACC-1 and ACC-2 were swapped by a migration that left no contact event."""
    with engine.begin() as conn:
        world = World(engine, create_org(conn, slug, dpo=dpo))
    for reference, country in (("ACC-1", "FR"), ("ACC-2", "DE"), ("ACC-3", "BE"),
                               ("ACC-4", "FR")):
        world.account(reference, country, business=reference != "ACC-3")
    world.verified_contact("ann@one.test", "ACC-1")
    world.verified_contact("bob@two.test", "ACC-2")
    world.verified_contact("cat@three.test", "ACC-3")
    world.verified_contact("books@accountant.test", "ACC-3", "ACC-4")
    world.migrate_links_silently({"ACC-1": "bob@two.test", "ACC-2": "ann@one.test"})
    world.sent("ACC-1", ["bob@two.test"], at(0))
    world.sent("ACC-2", ["ann@one.test"], at(7))
    world.sent("ACC-3", ["cat@three.test", "books@accountant.test"], at(9))
    world.sent("ACC-4", ["books@accountant.test"], at(11))
    return world
