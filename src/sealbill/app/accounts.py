"""Accounts (the customers): create, update, archive, list, show.

Invariants: a reference is unique in the organization; an account is named outside by its
random ``public_id`` (``acc_…``; a retired one answers "gone") or its reference, never by a row
id; archiving keeps the account and its history, cancels its open subscriptions at the end of
the current period and refuses new subscriptions and usage; every change is audited with before
and after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit
from sealbill.app.audit import page
from sealbill.app.common import check_if_match, refuse_nulls
from sealbill.app.context import ACCOUNTS_WRITE, READ, Actor
from sealbill.app.errors import Conflict, Gone, Invalid, NotFound, Problem, StateError
from sealbill.inputs.accounts import AccountIn, AccountPatch
from sealbill.inputs.models import parse
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.parties import records as parties
from sealbill.store.schema import accounts, subscriptions

_HIDDEN = ("id", "organization_id", "vat_id_valid")


def view(row: Any) -> dict[str, Any]:
    data = {k: v for k, v in dict(row).items() if k not in _HIDDEN}
    data["id"] = data.pop("public_id")
    return data


def account_row(conn: Connection, org_id: int, ref: str) -> Any:
    """The account named by its public id (``acc_…``) or its reference, in this organization."""
    if ref.startswith("acc_"):
        found = parties.resolve_public_id(conn, org_id, ref)
        if found.gone:
            raise Gone(f"account id {ref!r} was retired (ids are rotated after an incident)")
        if found.account_id is None:
            raise NotFound(f"account {ref!r} not found")
        return parties.account(conn, org_id, found.account_id)
    row = conn.execute(sa.select(accounts).where(accounts.c.organization_id == org_id,
                                                 accounts.c.reference == ref)).first()
    if row is None:
        raise NotFound(f"account {ref!r} not found")
    return row._mapping


def create(engine: Engine, actor: Actor, org_id: int, data: Any) -> dict[str, Any]:
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)
    account = parse(AccountIn, data, "account")
    with engine.begin() as conn:
        org = parties.organization(conn, org_id)
        taken = conn.execute(sa.select(accounts.c.id).where(
            accounts.c.organization_id == org_id,
            accounts.c.reference == account.reference)).first()
        if taken is not None:
            raise Conflict(f"account {account.reference!r} exists",
                           [Problem("reference", "already used")])
        values = account.model_dump()
        values["currency"] = values["currency"] or org["default_currency"]
        values["locale"] = values["locale"] or org["default_locale"]
        values["vat_id_valid"] = bool(values["vat_id"])
        values["is_business"] = values["is_business"] or bool(values["vat_id"])
        account_id = parties.create_account(conn, org_id, **values)
        result = view(parties.account(conn, org_id, account_id))
        audit.record(conn, actor, org_id, "account.create", "account", result["id"],
                     after=result)
    return result


def update(engine: Engine, actor: Actor, org_id: int, ref: str, data: Any, *,
           if_match: str | None = None) -> dict[str, Any]:
    """Change the fields given (an issued invoice keeps the buyer as it was)."""
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)
    patch = parse(AccountPatch, data, "account")
    changes = patch.model_dump(exclude_unset=True)
    refuse_nulls(accounts, changes, "account")
    if "vat_id" in changes:
        changes["vat_id_valid"] = bool(changes["vat_id"])
    with engine.begin() as conn:
        row = account_row(conn, org_id, ref)
        before = view(row)
        check_if_match(if_match, before)
        if changes:
            conn.execute(sa.update(accounts).where(accounts.c.organization_id == org_id,
                                                   accounts.c.id == row["id"]).values(**changes))
        after = view(parties.account(conn, org_id, int(row["id"])))
        shown = [k for k in changes if k in after]
        audit.record(conn, actor, org_id, "account.update", "account", after["id"],
                     before={k: before[k] for k in shown}, after={k: after[k] for k in shown})
    return after


def archive(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    """Archive: open subscriptions end with the current period; no new ones, no new usage."""
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = account_row(conn, org_id, ref)
        if row["archived_at"] is not None:
            raise StateError(f"account {row['reference']!r} is already archived")
        open_subs = conn.execute(sa.select(subscriptions.c.id).where(
            subscriptions.c.organization_id == org_id,
            subscriptions.c.account_id == row["id"], subscriptions.c.ends_on.is_(None)
        )).scalars().all()
        for sub_id in open_subs:
            catalog_store.cancel(conn, org_id, int(sub_id), on=now.date(), at_period_end=True)
        conn.execute(sa.update(accounts).where(accounts.c.organization_id == org_id,
                                               accounts.c.id == row["id"])
                     .values(archived_at=now))
        after = view(parties.account(conn, org_id, int(row["id"])))
        audit.record(conn, actor, org_id, "account.archive", "account", after["id"],
                     before={"archived_at": None},
                     after={"archived_at": now, "subscriptions_cancelled": len(open_subs)})
    return after


def show(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        return view(account_row(conn, org_id, ref))


def list_accounts(engine: Engine, actor: Actor, org_id: int, *, limit: int = 50,
                  cursor: str | None = None, archived: bool | None = None) -> dict[str, Any]:
    """A page of accounts by reference order; ``cursor`` is the last account's public id."""
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        query = sa.select(accounts).where(accounts.c.organization_id == org_id)
        if archived is not None:
            query = query.where(accounts.c.archived_at.is_not(None) if archived
                                else accounts.c.archived_at.is_(None))
        if cursor:
            query = query.where(accounts.c.reference > account_row(conn, org_id, cursor)[
                "reference"])
        rows = conn.execute(query.order_by(accounts.c.reference).limit(limit + 1)).all()
        items = [view(r._mapping) for r in rows[:limit]]
    return page(items, limit, len(rows) > limit)


def import_file(engine: Engine, actor: Actor, org_id: int, path: Path) -> dict[str, int]:
    """Import accounts and their contacts from a CSV or JSON file: every record is checked
    first, and one bad record refuses the file (each problem named, nothing written); the
    accounts and the import's audit entry commit together (``sealbill import accounts``)."""
    from sealbill.pipeline.parties.accounts_import import ImportRejected, import_accounts

    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)
    try:
        with engine.begin() as conn:
            counts = import_accounts(conn, org_id, path, actor=actor.name)
            slug = str(parties.organization(conn, org_id)["slug"])
            audit.record(conn, actor, org_id, "accounts.import", "organization", slug,
                         after={"file": path.name, **counts})
    except ImportRejected as exc:
        raise Invalid(str(exc), [Problem("", p) for p in exc.problems]) from None
    return counts
