"""Organizations (the sellers): create, show, and set identity, sending, archive and series.

Invariants: a slug is unique (a taken one is a :class:`Conflict`, nothing written); each field
is checked as in ``sealbill init`` (SIREN/SIRET/VAT with python-stdnum, IBAN/BIC with
schwifty); a French seller needs ``legal_info``; a new series gets its counter row in the same
transaction; every change is audited with before and after.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, ids
from sealbill.app.common import check_if_match, org_id_by_slug, refuse_nulls
from sealbill.app.context import ORG_WRITE, READ, Actor
from sealbill.app.errors import Conflict, Forbidden, Invalid, Problem
from sealbill.inputs.models import parse
from sealbill.inputs.organizations import (
    OrganizationIdentity,
    OrganizationIn,
    OrganizationSending,
    OrganizationSeries,
)
from sealbill.store.billing.invoices import ensure_series
from sealbill.store.parties import records as parties
from sealbill.store.schema import organizations

SECTIONS: dict[str, type[OrganizationIdentity | OrganizationSending | OrganizationSeries]] = {
    "identity": OrganizationIdentity, "sending": OrganizationSending,
    "series": OrganizationSeries,
}


def view(conn: Connection, row: Any) -> dict[str, Any]:
    data = {k: v for k, v in dict(row).items() if k != "id"}
    data["id"] = ids.encode(conn, int(row["id"]), "organization", int(row["id"]))
    return data


def create(engine: Engine, actor: Actor, data: Any) -> dict[str, Any]:
    """Create an organization with its number series. Only a local actor may (API keys are
    scoped to an organization that already exists)."""
    if actor.org_id is not None or not actor.can(ORG_WRITE):
        raise Forbidden("organizations are created by an administrator at the terminal")
    org = parse(OrganizationIn, data, "organization")
    if org.country == "FR" and not org.legal_info:
        raise Invalid("organization: 1 problem(s); nothing was written", [Problem(
            "legal_info", "required for a French seller (legal form, share capital and RCS, "
            "printed on every invoice)")])
    values = org.model_dump()
    values["credit_note_series"] = values["credit_note_series"] or values["invoice_series"] \
        + "AV-"
    with engine.begin() as conn:
        taken = conn.execute(sa.select(organizations.c.id)
                             .where(organizations.c.slug == org.slug)).first()
        if taken is not None:
            raise Conflict(f"organization slug {org.slug!r} is taken; choose another",
                           [Problem("slug", "already taken")])
        org_id = parties.create_organization(conn, **values)
        ensure_series(conn, org_id, values["invoice_series"])
        ensure_series(conn, org_id, values["credit_note_series"])
        result = view(conn, parties.organization(conn, org_id))
        audit.record(conn, actor, org_id, "organization.create", "organization", org.slug,
                     after=result)
    return result


def show(engine: Engine, actor: Actor, slug: str) -> dict[str, Any]:
    actor.require(READ)
    with engine.begin() as conn:
        org_id = org_id_by_slug(conn, actor, slug)
        return view(conn, parties.organization(conn, org_id))


def show_id(engine: Engine, actor: Actor, org_id: int) -> dict[str, Any]:
    actor.require(READ)
    actor.require_org(org_id)
    with engine.begin() as conn:
        return view(conn, parties.organization(conn, org_id))


def update(engine: Engine, actor: Actor, org_id: int, section: str, data: Any, *,
           if_match: str | None = None) -> dict[str, Any]:
    """Set one section (identity, sending, series) of the organization's settings."""
    actor.require(ORG_WRITE)
    actor.require_org(org_id)
    patch = parse(SECTIONS[section], data, f"organization {section}")
    changes = patch.model_dump(exclude_unset=True)
    refuse_nulls(organizations, changes, f"organization {section}")
    with engine.begin() as conn:
        before = view(conn, parties.organization(conn, org_id))
        check_if_match(if_match, before)
        merged = {**before, **changes}
        if merged["country"] == "FR" and not merged.get("legal_info"):
            raise Invalid("organization: 1 problem(s); nothing was written",
                          [Problem("legal_info", "required for a French seller")])
        if changes:
            conn.execute(sa.update(organizations).where(organizations.c.id == org_id)
                         .values(**changes))
        for name in ("invoice_series", "credit_note_series"):
            if name in changes:
                ensure_series(conn, org_id, changes[name])
        after = view(conn, parties.organization(conn, org_id))
        audit.record(conn, actor, org_id, f"organization.set_{section}", "organization",
                     before["slug"], before={k: before[k] for k in changes},
                     after={k: after[k] for k in changes})
    return after
