"""Customer balances: read an account's credit, give a manual credit, refund a customer's
credit (money paid back outside sealbill).

Invariants: a refund is appended to the account's balance history (``kind = "refund"``, a
negative amount, who and why), never edits an entry; it takes at most the account's credit in
that currency, so a balance never goes below zero — checked under the same lock as the
finalization that applies credit to invoices (the organization's invoice series row on
PostgreSQL; SQLite's single writer), so a refund and a finalization cannot both spend the same
credit; a credit or a refund is audited in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit
from sealbill.app.accounts import account_row
from sealbill.app.context import ACCOUNTS_WRITE, Actor
from sealbill.app.errors import Invalid, Problem
from sealbill.domain.money import Money, MoneyError, format_plain, parse_decimal, to_minor
from sealbill.store.billing import balances
from sealbill.store.billing.invoices import ensure_series
from sealbill.store.parties import records as parties
from sealbill.store.schema import number_series


def _lock_credit(conn: Connection, org_id: int) -> None:
    """Take the lock a finalization holds while it applies credit (its series row)."""
    prefix = str(parties.organization(conn, org_id)["invoice_series"])
    ensure_series(conn, org_id, prefix)
    conn.execute(sa.select(number_series.c.id).where(
        number_series.c.organization_id == org_id, number_series.c.prefix == prefix)
        .with_for_update()).first()


def _amount(text: str, currency: str, what: str = "refund") -> int:
    """A positive amount in whole minor units of ``currency``, else :class:`Invalid`."""
    try:
        value = parse_decimal(text, field="amount")
        minor = to_minor(value, currency)
    except MoneyError as exc:
        raise Invalid(f"{what}: 1 problem(s)", [Problem("amount", str(exc))]) from None
    if minor <= 0 or Money(minor, currency).major != value:
        raise Invalid(f"{what}: 1 problem(s)", [Problem(
            "amount", f"a positive amount in whole {currency} minor units, got {text}")])
    return minor


def refund(engine: Engine, actor: Actor, org_id: int, ref: str, *, amount: str, reason: str,
           currency: str | None = None) -> dict[str, Any]:
    """Record that ``amount`` of the account's credit was paid back to the customer."""
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)
    if len(reason.strip()) < 3:
        raise Invalid("refund: 1 problem(s)", [Problem("reason", "give a reason")])
    with engine.begin() as conn:
        account = account_row(conn, org_id, ref)
        cur = (currency or str(account["currency"])).upper()
        minor = _amount(amount, cur)
        _lock_credit(conn, org_id)
        account_id = int(account["id"])
        credit = balances.balances(conn, org_id, [account_id]).get((account_id, cur), 0)
        if minor > credit:
            raise Invalid("refund: 1 problem(s)", [Problem(
                "amount", f"{format_plain(Money(minor, cur))} {cur} is more than account "
                          f"{account['reference']}'s credit of "
                          f"{format_plain(Money(max(credit, 0), cur))} {cur}: "
                          "a balance never goes below zero")])
        balances.add_entry(conn, org_id, account_id, cur, -minor, kind="refund",
                           reason=reason.strip(), actor=actor.name, at=datetime.now(UTC))
        audit.record(conn, actor, org_id, "account.refund", "account",
                     str(account["public_id"]), before={"balance_minor": credit},
                     after={"balance_minor": credit - minor, "refunded_minor": minor,
                            "currency": cur, "reason": reason.strip()})
    return {"account": str(account["reference"]), "refunded_minor": minor, "currency": cur,
            "balance_minor": credit - minor}


def show(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """The account's credit per currency (minor units) and its history (credits in, credit
    applied, refunds)."""
    from sealbill.app.context import READ

    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        account = account_row(conn, org_id, ref)
        account_id = int(account["id"])
        totals = balances.balances(conn, org_id, [account_id])
        entries = balances.history(conn, org_id, account_id)
    return {"account": str(account["reference"]),
            "balance_minor": {cur: total for (_, cur), total in sorted(totals.items())},
            "history": entries}


def credit(engine: Engine, actor: Actor, org_id: int, ref: str, *, amount: str, reason: str,
           currency: str | None = None) -> dict[str, Any]:
    """Give the account a manual credit (its next invoices apply it); appended to its
    history and audited in the same transaction."""
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)
    if len(reason.strip()) < 3:
        raise Invalid("credit: 1 problem(s)", [Problem("reason", "give a reason")])
    with engine.begin() as conn:
        account = account_row(conn, org_id, ref)
        cur = (currency or str(account["currency"])).upper()
        minor = _amount(amount, cur, "credit")
        balances.add_entry(conn, org_id, int(account["id"]), cur, minor, kind="manual",
                           reason=reason.strip(), actor=actor.name, at=datetime.now(UTC))
        audit.record(conn, actor, org_id, "account.credit", "account",
                     str(account["public_id"]), after={"credited_minor": minor,
                                                       "currency": cur,
                                                       "reason": reason.strip()})
    return {"account": str(account["reference"]), "credited_minor": minor, "currency": cur}
