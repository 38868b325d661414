"""Small builders of ledger rows and contact history for the pure blast-radius tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sealbill.domain.blast_radius import LedgerMessage, SentRecipient, Subject
from sealbill.domain.link_history import AddressEvent, LinkEvent, LinkHistory

T0 = datetime(2026, 5, 14, 11, 35, tzinfo=UTC)
CATEGORIES = ("account_reference", "admin_email", "amount", "payment_method", "postal_address")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


class History:
    """Contact events in the order they are recorded, as ``parties`` would append them."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)
        self.links: list[LinkEvent] = []
        self.addresses: list[AddressEvent] = []

    def contact(self, contact_id: int, email: str, when: datetime) -> History:
        self.addresses.append(AddressEvent(next(self._seq), contact_id, email, when))
        return self

    def link(self, contact_id: int, account_id: int, event: str, when: datetime,
             role: str = "billing") -> History:
        self.links.append(LinkEvent(next(self._seq), contact_id, account_id, role, event, when))
        return self

    def verified(self, contact_id: int, account_id: int, when: datetime,
                 role: str = "billing") -> History:
        return (self.link(contact_id, account_id, "linked", when, role)
                .link(contact_id, account_id, "verified", when, role))

    def build(self) -> LinkHistory:
        return LinkHistory(self.links, self.addresses)


_message_numbers = itertools.count(1)


def message(account_id: int, recipients: list[tuple[int | None, str]], when: datetime,
            categories: tuple[str, ...] = CATEGORIES) -> LedgerMessage:
    number = next(_message_numbers)
    return LedgerMessage(
        message_id=f"<m{number}@sealbill.test>", run_id=1, account_id=account_id,
        account_reference=f"ACC-{account_id:03d}", invoice_id=number,
        invoice_number=f"F2026-{number:05d}",
        recipients=tuple(SentRecipient(cid, email) for cid, email in recipients),
        data_categories=categories, sent_at=when,
    )


def subjects(countries: dict[int, str]) -> dict[int, Subject]:
    return {account_id: Subject(account_id, f"ACC-{account_id:03d}", f"Customer {account_id}",
                                country, is_business=account_id % 2 == 0)
            for account_id, country in countries.items()}
