"""The customer portal's use cases: sign-in by magic link, and what a signed-in contact sees.

Access: a contact asks for a link with their address; for every account on which that address
is a *verified* contact, a single-use link valid 15 minutes is mailed to that address only
(a code of :mod:`sealbill.store.parties.verification`, purpose ``portal_login``, signed over the
contact's current address). Redeeming it opens a session on exactly that one account. The
answer to a request never says whether the address is known.

Invariants: a :class:`PortalUser` is re-checked on every request (its link to the account must
still be verified: a removed colleague is signed out at the next click); every read names the
session's account, so an id of another account — of this organization or another — is "not
found", exactly like an id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import ids
from sealbill.app import invoices as invoice_use_cases
from sealbill.app.context import Actor
from sealbill.app.errors import NotFound, Unauthenticated
from sealbill.app.portal_mail import TransportFactory, login_text, send_text
from sealbill.store.parties import records as parties
from sealbill.store.parties import verification as tokens
from sealbill.store.schema import (
    accounts,
    contact_links,
    contacts,
    delivery_ledger,
    invoices,
    verification_tokens,
)

LOGIN = "portal_login"
LOGIN_TTL = timedelta(minutes=15)
# At most one sign-in mail per contact and account in this interval: asking again and again
# cannot turn the portal into a way to flood someone's mailbox.
RESEND_AFTER = timedelta(minutes=1)


@dataclass(frozen=True)
class PortalUser:
    org_id: int
    contact_id: int
    account_id: int
    email: str
    account_reference: str
    account_name: str
    locale: str

    @property
    def actor(self) -> Actor:
        """How the records name what this person does (``portal:<email>``)."""
        return Actor(name=f"portal:{self.email}", role="read-only", org_id=self.org_id,
                     channel="portal")


def org_by_slug(engine: Engine, slug: str) -> tuple[int, Any]:
    with engine.begin() as conn:
        try:
            org = parties.organization_by_slug(conn, slug)
        except parties.NotFound:
            raise NotFound("no such portal") from None
    return int(org["id"]), org


def request_link(engine: Engine, slug: str, email: str, *, portal_base: str,
                 transport: TransportFactory, key: bytes) -> int:
    """Mail a sign-in link for each account where ``email`` is verified (not again within
    ``RESEND_AFTER``); the count of mails sent (for tests and logs only: the page says the
    same thing whatever it is)."""
    org_id, org = org_by_slug(engine, slug)
    try:
        address = parties.normalize_email(email)
    except ValueError:
        return 0
    mails = []
    with engine.begin() as conn:
        rows = conn.execute(
            sa.select(contacts.c.id, accounts.c.id.label("account_id"), accounts.c.reference,
                      accounts.c.locale)
            .join(contact_links, contact_links.c.contact_id == contacts.c.id)
            .join(accounts, accounts.c.id == contact_links.c.account_id)
            .where(contacts.c.organization_id == org_id, contacts.c.email == address,
                   contact_links.c.status == "verified", accounts.c.archived_at.is_(None))
            .distinct()).all()
        for r in rows:
            recent = conn.execute(sa.select(verification_tokens.c.id).where(
                verification_tokens.c.organization_id == org_id,
                verification_tokens.c.contact_id == r.id,
                verification_tokens.c.account_id == r.account_id,
                verification_tokens.c.purpose == LOGIN,
                verification_tokens.c.created_at > now() - RESEND_AFTER)).first()
            if recent is not None:
                continue
            code, expires = tokens.issue(conn, org_id, int(r.id), int(r.account_id), key,
                                         ttl=LOGIN_TTL, purpose=LOGIN)
            link = f"{portal_base}/portal/{quote(slug)}/enter?code={quote(code, safe='')}"
            mails.append(login_text(str(r.reference), link, expires, str(r.locale)))
    for subject, body in mails:
        send_text(transport, org, address, subject, body)
    return len(mails)


def redeem_link(engine: Engine, org_id: int, code: str, key: bytes) -> tuple[int, int]:
    """(contact id, account id) of a valid sign-in link, consumed; Unauthenticated otherwise
    (used, expired, revoked, unknown, or the contact's address changed since)."""
    refused = Unauthenticated("this sign-in link is not valid (used, expired or unknown): "
                              "ask for a new one")
    with engine.begin() as conn:
        purpose = conn.execute(sa.select(verification_tokens.c.purpose).where(
            verification_tokens.c.organization_id == org_id,
            verification_tokens.c.token_hash == tokens.digest(code.strip()))).scalar()
        if purpose != LOGIN:
            raise refused
        try:
            redeemed = tokens.redeem(conn, org_id, code, key)
        except tokens.TokenError:
            raise refused from None
        if not _verified(conn, org_id, redeemed.contact_id, redeemed.account_id):
            raise refused
    return redeemed.contact_id, redeemed.account_id


def _verified(conn: Connection, org_id: int, contact_id: int, account_id: int) -> bool:
    return conn.execute(sa.select(contact_links.c.id).where(
        contact_links.c.organization_id == org_id, contact_links.c.contact_id == contact_id,
        contact_links.c.account_id == account_id, contact_links.c.status == "verified")
    ).first() is not None


def portal_user(engine: Engine, org_id: int, contact_id: int, account_id: int) -> PortalUser:
    """The signed-in person, if their link to the account is still verified."""
    with engine.begin() as conn:
        if not _verified(conn, org_id, contact_id, account_id):
            raise Unauthenticated("you no longer have access to this account")
        email = conn.execute(sa.select(contacts.c.email).where(
            contacts.c.organization_id == org_id, contacts.c.id == contact_id)).scalar_one()
        account = parties.account(conn, org_id, account_id)
    return PortalUser(org_id, contact_id, account_id, str(email), str(account["reference"]),
                      str(account["name"]), str(account["locale"]))


def documents(engine: Engine, user: PortalUser) -> list[dict[str, Any]]:
    """The account's issued invoices and credit notes, newest first."""
    with engine.begin() as conn:
        rows = conn.execute(sa.select(invoices).where(
            invoices.c.organization_id == user.org_id, invoices.c.account_id == user.account_id,
            invoices.c.status != "draft").order_by(invoices.c.id.desc())).all()
        return [{"id": ids.encode(conn, user.org_id, "invoice", int(r.id)), "number": r.number,
                 "kind": r.kind, "status": r.status, "issue_date": r.issue_date,
                 "due_date": r.due_date, "currency": r.currency,
                 "total_incl_minor": int(r.total_incl_minor)} for r in rows]


def balance(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Invoiced minus credited, per currency (sealbill records no payments yet)."""
    out: dict[str, int] = {}
    for d in docs:
        sign = -1 if d["kind"] == "credit_note" else 1
        out[d["currency"]] = out.get(d["currency"], 0) + sign * d["total_incl_minor"]
    return out


def document(engine: Engine, user: PortalUser, ref: str, kind: str) -> tuple[str, bytes]:
    """The PDF (or Factur-X XML) of one of the account's documents; another account's is
    "not found"."""
    if kind not in ("pdf", "xml"):
        raise NotFound("no such document")
    with engine.begin() as conn:
        row_id = ids.decode(conn, user.org_id, "invoice", ref)
        owner = conn.execute(sa.select(invoices.c.account_id).where(
            invoices.c.organization_id == user.org_id, invoices.c.id == row_id,
            invoices.c.status != "draft")).scalar()
    if owner is None or int(owner) != user.account_id:
        raise NotFound(f"invoice {ref!r} not found")
    return invoice_use_cases.download(engine, user.actor, user.org_id, ref, kind)


def delivery_log(engine: Engine, user: PortalUser) -> list[dict[str, Any]]:
    """Which document went to which of the account's addresses, when (the ledger)."""
    with engine.begin() as conn:
        rows = conn.execute(sa.select(delivery_ledger).where(
            delivery_ledger.c.organization_id == user.org_id,
            delivery_ledger.c.account_id == user.account_id)
            .order_by(delivery_ledger.c.seq.desc()).limit(500)).all()
    return [{"sent_at": r.sent_at, "invoice": r.invoice_number,
             "recipients": [str(x["email"]) for x in r.recipients]} for r in rows]


def now() -> datetime:
    return datetime.now(UTC)
