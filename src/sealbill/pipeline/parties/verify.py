"""Verify that an address belongs to an account's billing contact: by code, or by an operator.

``start``: a single-use, expiring, signed code (and a link carrying it, when the organization
configured its verification page) is mailed to the address being verified — to that one address
only, built from its contact record, in French and English. ``confirm``: the code
comes back, the link becomes ``verified`` (method ``email_token``). ``operator_confirm``: a person
vouches for the address, with a recorded reason (method ``operator``).

Invariants: every step is appended to ``contact_events`` (``verification_sent``, ``verified``
with its method and actor, ``verification_refused``); a refused code changes no link; the
secret key never leaves the process (``SEALBILL_SECRET_KEY`` or a 0600 key file).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.documents.verification_mail import verification_text
from sealbill.mail.dkim import DkimSigner
from sealbill.mail.smtp import Outcome
from sealbill.pipeline.delivery.send import Transport
from sealbill.store.parties import address_rules, contact_log
from sealbill.store.parties import records as parties
from sealbill.store.parties import verification as tokens
from sealbill.store.schema import (
    accounts,
    contact_links,
    contacts,
    verification_tokens,
)


class VerificationError(RuntimeError):
    """The verification cannot start or complete (reason in the message)."""


@dataclass(frozen=True)
class Started:
    contact_id: int
    account_id: int
    email: str
    expires_at: datetime


def secret_key(files_dir: Path) -> bytes:
    """``SEALBILL_SECRET_KEY``, else ``<files_dir>/secret.key`` (created once, mode 0600)."""
    explicit = os.environ.get("SEALBILL_SECRET_KEY")
    if explicit:
        return explicit.encode()
    path = files_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _link(conn: Connection, org_id: int, email: str, account_ref: str) -> tuple[int, int, int]:
    """(contact id, account id, billing link id) or VerificationError."""
    email = parties.normalize_email(email)
    accounts = parties.account_ids_by_reference(conn, org_id)
    if account_ref not in accounts:
        raise VerificationError(f"no account with reference {account_ref!r}")
    row = conn.execute(
        sa.select(contacts.c.id, contact_links.c.id.label("link_id"))
        .join(contact_links, contact_links.c.contact_id == contacts.c.id)
        .where(contacts.c.organization_id == org_id, contacts.c.email == email,
               contact_links.c.account_id == accounts[account_ref],
               contact_links.c.role == "billing")).first()
    if row is None:
        raise VerificationError(f"{email} is not a billing contact of {account_ref}: link it "
                                "first (sealbill import accounts)")
    return int(row.id), accounts[account_ref], int(row.link_id)


def _event(conn: Connection, org_id: int, contact_id: int, account_id: int | None, event: str,
           actor: str, reason: str | None = None) -> None:
    contact_log.append(conn, org_id, contact_id, event, actor, datetime.now(UTC),
                       account_id=account_id, role="billing", method="email_token",
                       reason=reason)


def start(engine: Engine, org_id: int, email: str, account_ref: str, *, actor: str,
          transport: Transport, signer: DkimSigner | None, key: bytes,
          link_base: str | None = None) -> Started:
    """Mail a code to ``email`` (French and English, the account's language first); with
    ``link_base`` (the organization's verification page, ``SEALBILL_VERIFY_URL``) also a link
    ``<link_base>?code=...``. Without it the mail carries the code only."""
    with engine.begin() as conn:
        contact_id, account_id, _ = _link(conn, org_id, email, account_ref)
        # no verification mail to an address that could never receive an invoice
        address_rules.check(conn, org_id, parties.normalize_email(email),
                            account_id=account_id,
                            where=f"verification of {account_ref}: field 'email'")
        code, expires_at = tokens.issue(conn, org_id, contact_id, account_id, key)
        org = parties.organization(conn, org_id)
        locale = conn.execute(sa.select(accounts.c.locale).where(
            accounts.c.organization_id == org_id, accounts.c.id == account_id)).scalar_one()
        address = parties.normalize_email(email)
        _event(conn, org_id, contact_id, account_id, "verification_sent", actor)
    subject, body = verification_text(
        account_ref, code, expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        link_base, str(locale))
    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(str(org["sender_name"]), addr_spec=str(org["sender_email"]))
    msg["To"] = Address(addr_spec=address)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=str(org["sender_email"]).rsplit("@", 1)[1])
    msg.set_content(body)
    data = msg.as_bytes(policy=SMTP)
    if signer is not None:
        data = signer.sign(data)
    result = transport.send(str(org["sender_email"]), (address,), data)
    transport.close()
    if result.outcome is not Outcome.SENT:
        raise VerificationError(f"the verification mail was not accepted: {result.detail}")
    return Started(contact_id, account_id, address, expires_at)


def confirm(engine: Engine, org_id: int, code: str, *, actor: str, key: bytes) -> tokens.Redeemed:
    try:
        with engine.begin() as conn:
            redeemed = tokens.redeem(conn, org_id, code, key)
            link_id = conn.execute(sa.select(contact_links.c.id).where(
                contact_links.c.organization_id == org_id,
                contact_links.c.contact_id == redeemed.contact_id,
                contact_links.c.account_id == redeemed.account_id,
                contact_links.c.role == "billing")).scalar()
            if link_id is None:
                raise tokens.TokenError("the billing link no longer exists")
            parties.set_link_status(conn, org_id, int(link_id), "verified", actor=actor,
                                    method="email_token", reason=f"code {redeemed.token_id}")
            return redeemed
    except tokens.TokenError as exc:
        _record_refusal(engine, org_id, code, actor, str(exc))
        raise VerificationError(str(exc)) from exc


def _record_refusal(engine: Engine, org_id: int, code: str, actor: str, reason: str) -> None:
    # A refused code whose row exists is recorded against its contact; an unknown code names
    # nobody, so there is no contact to record it against.
    digest = tokens.digest(code.strip())
    with engine.begin() as conn:
        row = conn.execute(sa.select(verification_tokens.c.contact_id,
                                     verification_tokens.c.account_id).where(
            verification_tokens.c.organization_id == org_id,
            verification_tokens.c.token_hash == digest)).first()
        if row is not None:
            _event(conn, org_id, int(row.contact_id), int(row.account_id),
                   "verification_refused", actor, reason)


def operator_confirm(engine: Engine, org_id: int, email: str, account_ref: str, *, actor: str,
                     reason: str) -> tuple[int, int]:
    if not reason.strip():
        raise VerificationError("an operator confirmation needs a --reason")
    with engine.begin() as conn:
        contact_id, account_id, link_id = _link(conn, org_id, email, account_ref)
        parties.set_link_status(conn, org_id, link_id, "verified", actor=actor,
                                method="operator", reason=reason)
    return contact_id, account_id
