"""Contacts of accounts: add, change address, set role, unlink, list with state and history.

Every write goes through :mod:`sealbill.store.parties.records` (which appends ``contact_events``
and,
after the seal work, seals the rows), never raw SQL here. Invariants: a new link is
``pending`` — nothing is sent to an address before it is verified; changing an address returns
every link of the contact to ``pending`` (re-verification required); a role change revokes the
old link and opens a pending one with the new role; unlinking revokes (the link and its
history are kept); every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.accounts import account_row
from sealbill.app.common import check_if_match
from sealbill.app.context import ACCOUNTS_WRITE, READ, Actor
from sealbill.app.errors import Invalid, NotFound, Problem, StateError
from sealbill.inputs.accounts import ContactIn, Role
from sealbill.inputs.models import parse
from sealbill.pipeline.parties import verify
from sealbill.store.parties import records as parties
from sealbill.store.schema import accounts, contact_events, contact_links, contacts


def contact_row(conn: Connection, org_id: int, ref: str) -> Any:
    """A contact by public id (``con_…``) or e-mail address."""
    if ref.startswith("con_"):
        condition = contacts.c.id == ids.decode(conn, org_id, "contact", ref)
    else:
        try:
            condition = contacts.c.email == parties.normalize_email(ref)
        except ValueError:
            raise NotFound(f"contact {ref!r} not found") from None
    row = conn.execute(sa.select(contacts).where(contacts.c.organization_id == org_id,
                                                 condition)).first()
    if row is None:
        raise NotFound(f"contact {ref!r} not found")
    return row._mapping


def view(conn: Connection, org_id: int, row: Any, *, history: bool = False) -> dict[str, Any]:
    links = conn.execute(
        sa.select(contact_links, accounts.c.reference, accounts.c.public_id)
        .join(accounts, accounts.c.id == contact_links.c.account_id)
        .where(contact_links.c.organization_id == org_id,
               contact_links.c.contact_id == row["id"])
        .order_by(accounts.c.reference, contact_links.c.role)).all()
    data: dict[str, Any] = {
        "id": ids.encode(conn, org_id, "contact", int(row["id"])), "email": row["email"],
        "name": row["name"], "bounced_at": row["bounced_at"],
        "links": [{"account": link.reference, "account_id": link.public_id,
                   "role": link.role, "status": link.status,
                   "verification_method": link.verification_method,
                   "verified_at": link.verified_at, "changed_at": link.status_changed_at,
                   "changed_by": link.status_changed_by} for link in links]}
    if history:
        events = conn.execute(
            sa.select(contact_events, accounts.c.reference)
            .outerjoin(accounts, accounts.c.id == contact_events.c.account_id)
            .where(contact_events.c.organization_id == org_id,
                   contact_events.c.contact_id == row["id"])
            .order_by(contact_events.c.at, contact_events.c.id)).all()
        data["history"] = [{"at": e.at, "event": e.event, "account": e.reference,
                            "role": e.role, "actor": e.actor, "method": e.method,
                            "reason": e.reason, "old_value": e.old_value,
                            "new_value": e.new_value} for e in events]
    return data


def _write(actor: Actor, org_id: int) -> None:
    actor.require(ACCOUNTS_WRITE)
    actor.require_org(org_id)


def add(engine: Engine, actor: Actor, org_id: int, account_ref: str, data: Any
        ) -> dict[str, Any]:
    """Link a contact (created if new) to the account with a role, pending verification."""
    _write(actor, org_id)
    contact = parse(ContactIn, data, "contact")
    with engine.begin() as conn:
        account = account_row(conn, org_id, account_ref)
        if account["archived_at"] is not None:
            raise StateError(f"account {account['reference']!r} is archived")
        contact_id = parties.add_contact(conn, org_id, contact.email, name=contact.name,
                                         actor=actor.name)
        parties.link_contact(conn, org_id, contact_id, int(account["id"]), contact.role,
                             actor=actor.name)
        result = view(conn, org_id, parties_contact(conn, org_id, contact_id))
        audit.record(conn, actor, org_id, "contact.add", "contact", result["id"],
                     after={"email": contact.email, "account": account["reference"],
                            "role": contact.role, "status": "pending"})
    return result


def parties_contact(conn: Connection, org_id: int, contact_id: int) -> Any:
    return conn.execute(sa.select(contacts).where(contacts.c.organization_id == org_id,
                                                  contacts.c.id == contact_id)).one()._mapping


def _unchanged(conn: Connection, org_id: int, row: Any, if_match: str | None) -> None:
    """``If-Match`` given: the contact as ``GET`` shows it (links and history) must still
    have that ETag, checked in the change's transaction."""
    if if_match is not None:
        check_if_match(if_match, view(conn, org_id, row, history=True))


def change_address(engine: Engine, actor: Actor, org_id: int, ref: str, new_email: str, *,
                   if_match: str | None = None) -> dict[str, Any]:
    """New address; every link goes back to pending until the new address is verified."""
    _write(actor, org_id)
    new = parse(ContactIn, {"email": new_email}, "contact").email
    with engine.begin() as conn:
        row = contact_row(conn, org_id, ref)
        _unchanged(conn, org_id, row, if_match)
        clash = conn.execute(sa.select(contacts.c.id).where(
            contacts.c.organization_id == org_id, contacts.c.email == new)).scalar()
        if clash is not None and int(clash) != int(row["id"]):
            raise Invalid("contact: 1 problem(s); nothing was written",
                          [Problem("email", f"{new} is already another contact")])
        before = view(conn, org_id, row)
        parties.change_contact_email(conn, org_id, int(row["id"]), new, actor=actor.name)
        # Revoked links stay revoked; the others must be verified again for the new address.
        for link in conn.execute(sa.select(contact_links.c.id, contact_links.c.status).where(
                contact_links.c.organization_id == org_id,
                contact_links.c.contact_id == row["id"])).all():
            if link.status not in ("pending", "revoked"):
                parties.set_link_status(conn, org_id, int(link.id), "pending",
                                        actor=actor.name, reason="address changed")
        after = view(conn, org_id, parties_contact(conn, org_id, int(row["id"])))
        audit.record(conn, actor, org_id, "contact.change_address", "contact", after["id"],
                     before={"email": before["email"], "links": before["links"]},
                     after={"email": after["email"], "links": after["links"]})
    return after


def _links(conn: Connection, org_id: int, contact_id: int, account_id: int) -> list[Any]:
    return list(conn.execute(sa.select(contact_links).where(
        contact_links.c.organization_id == org_id, contact_links.c.contact_id == contact_id,
        contact_links.c.account_id == account_id)).all())


def set_role(engine: Engine, actor: Actor, org_id: int, ref: str, account_ref: str,
             role: Role, *, from_role: Role | None = None,
             if_match: str | None = None) -> dict[str, Any]:
    """Move the contact's link on the account to ``role`` (pending: a billing role must be
    verified before anything is sent to it)."""
    _write(actor, org_id)
    parse(ContactIn, {"email": "x@example.org", "role": role}, "contact")
    with engine.begin() as conn:
        row = contact_row(conn, org_id, ref)
        _unchanged(conn, org_id, row, if_match)
        account = account_row(conn, org_id, account_ref)
        live = [link for link in _links(conn, org_id, int(row["id"]), int(account["id"]))
                if link.status != "revoked" and (from_role is None or link.role == from_role)]
        if len(live) != 1:
            raise Invalid("contact: 1 problem(s); nothing was written", [Problem(
                "from_role", f"the contact has {len(live)} live link(s) on "
                f"{account['reference']}; say which role changes (--from)")])
        old = live[0]
        if old.role == role:
            raise StateError(f"the contact already has role {role} on {account['reference']}")
        parties.set_link_status(conn, org_id, int(old.id), "revoked", actor=actor.name,
                                reason=f"role changed to {role}")
        link_id = parties.link_contact(conn, org_id, int(row["id"]), int(account["id"]), role,
                                       actor=actor.name)
        current = conn.execute(sa.select(contact_links.c.status).where(
            contact_links.c.id == link_id)).scalar_one()
        if current != "pending":
            parties.set_link_status(conn, org_id, link_id, "pending", actor=actor.name,
                                    reason=f"role changed from {old.role}")
        result = view(conn, org_id, row)
        audit.record(conn, actor, org_id, "contact.set_role", "contact", result["id"],
                     before={"account": account["reference"], "role": old.role,
                             "status": old.status},
                     after={"account": account["reference"], "role": role,
                            "status": "pending"})
    return result


def unlink(engine: Engine, actor: Actor, org_id: int, ref: str, account_ref: str,
           role: Role | None = None, *, if_match: str | None = None) -> dict[str, Any]:
    """Revoke the contact's links on the account (all roles, or ``role``); history is kept."""
    _write(actor, org_id)
    with engine.begin() as conn:
        row = contact_row(conn, org_id, ref)
        _unchanged(conn, org_id, row, if_match)
        account = account_row(conn, org_id, account_ref)
        live = [link for link in _links(conn, org_id, int(row["id"]), int(account["id"]))
                if link.status != "revoked" and (role is None or link.role == role)]
        if not live:
            raise NotFound(f"contact {ref!r} has no live link on {account['reference']}")
        for link in live:
            parties.set_link_status(conn, org_id, int(link.id), "revoked", actor=actor.name,
                                    reason="unlinked")
        result = view(conn, org_id, row)
        audit.record(conn, actor, org_id, "contact.unlink", "contact", result["id"],
                     before=[{"account": account["reference"], "role": link.role,
                              "status": link.status} for link in live],
                     after={"status": "revoked"})
    return result


def confirm_by_operator(engine: Engine, actor: Actor, org_id: int, ref: str, account_ref: str,
                        reason: str) -> dict[str, Any]:
    """An operator vouches for the address as the account's billing contact (reason kept);
    the link, its history, the audit entry and the ``contact.verified`` webhook are written
    in one transaction."""
    from sealbill.app import webhooks

    _write(actor, org_id)
    if len(reason.strip()) < 3:
        raise Invalid("confirmation: 1 problem(s)", [Problem("reason", "give a reason")])
    with engine.begin() as conn:
        row = contact_row(conn, org_id, ref)
        account = account_row(conn, org_id, account_ref)
        link = conn.execute(sa.select(contact_links.c.id).where(
            contact_links.c.organization_id == org_id,
            contact_links.c.contact_id == row["id"],
            contact_links.c.account_id == account["id"],
            contact_links.c.role == "billing")).scalar()
        if link is None:
            raise StateError(f"{row['email']} is not a billing contact of "
                             f"{account['reference']}: add it first")
        parties.set_link_status(conn, org_id, int(link), "verified", actor=actor.name,
                                method="operator", reason=reason)
        result = view(conn, org_id, row)
        audit.record(conn, actor, org_id, "contact.confirm", "contact", result["id"],
                     after={"account": account["reference"], "role": "billing",
                            "status": "verified", "method": "operator", "reason": reason})
        _verified_event(conn, org_id, result["id"], account, "operator", webhooks)
    return result


def _verified_event(conn: Connection, org_id: int, contact_id: str, account: Any,
                    method: str, webhooks: Any) -> None:
    webhooks.emit(conn, org_id, "contact.verified",
                  f"contact.verified:{contact_id}:{account['public_id']}:"
                  f"{datetime.now(UTC).isoformat()}",
                  {"contact_id": contact_id, "account_id": account["public_id"],
                   "account": account["reference"], "method": method})


def show(engine: Engine, actor: Actor, org_id: int, ref: str) -> dict[str, Any]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        return view(conn, org_id, contact_row(conn, org_id, ref), history=True)


def list_contacts(engine: Engine, actor: Actor, org_id: int, *, account_ref: str | None = None,
                  history: bool = False) -> list[dict[str, Any]]:
    """Contacts (of one account, or all) with each link's verification state."""
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        query = sa.select(contacts).where(contacts.c.organization_id == org_id)
        if account_ref:
            account = account_row(conn, org_id, account_ref)
            query = query.where(contacts.c.id.in_(sa.select(contact_links.c.contact_id).where(
                contact_links.c.organization_id == org_id,
                contact_links.c.account_id == account["id"])))
        rows = conn.execute(query.order_by(contacts.c.email)).all()
        return [view(conn, org_id, r._mapping, history=history) for r in rows]


def _secret_key(engine: Engine, files_dir: Path | None) -> bytes:
    """The installation's verification key; a database with sealed rows and no sealing key
    stops here (``KeyMissing``), never with a freshly made-up key."""
    from sealbill import settings
    from sealbill.keys import for_connection

    with engine.begin() as conn:
        for_connection(conn)
    return verify.secret_key(settings.files_dir(files_dir, db_url=engine.url
                                                .render_as_string(hide_password=False)))


def send_verification(engine: Engine, actor: Actor, org_id: int, ref: str, account_ref: str,
                      *, link_base: str | None = None, transport: Any = None,
                      key: bytes | None = None, files_dir: Path | None = None
                      ) -> dict[str, Any]:
    """Mail a single-use code to the contact's address (by default through the SMTP settings
    of the environment, DKIM-signed as the runs' mail is, with the installation's key; the
    web passes its own transport and key)."""
    from sealbill.app.run_sends import dkim_signer
    from sealbill.mail import config as mail_config
    from sealbill.mail.smtp import SmtpSender

    _write(actor, org_id)
    with engine.begin() as conn:
        row = contact_row(conn, org_id, ref)
        account = account_row(conn, org_id, account_ref)
    try:
        started = verify.start(engine, org_id, str(row["email"]), str(account["reference"]),
                               actor=actor.name,
                               transport=transport or SmtpSender(mail_config.smtp_config()),
                               signer=None if transport else dkim_signer(engine, org_id),
                               key=key or _secret_key(engine, files_dir),
                               link_base=link_base)
    except (verify.VerificationError, mail_config.ConfigError) as exc:
        raise StateError(str(exc)) from None
    with engine.begin() as conn:
        public = ids.encode(conn, org_id, "contact", int(row["id"]))
        audit.record(conn, actor, org_id, "contact.verification_sent", "contact", public,
                     after={"account": account["reference"], "expires_at": started.expires_at})
    return {"contact_id": public, "sent_to": started.email, "expires_at": started.expires_at}


def confirm_code(engine: Engine, actor: Actor, org_id: int, code: str, *,
                 files_dir: Path | None = None) -> dict[str, Any]:
    """Redeem a verification code: the billing link becomes verified (method email_token)."""
    _write(actor, org_id)
    try:
        done = verify.confirm(engine, org_id, code, actor=actor.name,
                              key=_secret_key(engine, files_dir))
    except verify.VerificationError as exc:
        raise StateError(str(exc)) from None
    from sealbill.app import webhooks
    from sealbill.store.parties import records as store_parties

    with engine.begin() as conn:
        result = view(conn, org_id, parties_contact(conn, org_id, done.contact_id))
        audit.record(conn, actor, org_id, "contact.verify", "contact", result["id"],
                     after={"status": "verified", "method": "email_token"})
        account = store_parties.account(conn, org_id, done.account_id)
        _verified_event(conn, org_id, result["id"], account, "email_token", webhooks)
    return result
