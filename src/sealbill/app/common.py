"""Helpers shared by the use cases: organization lookup, ETags, optimistic concurrency."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.engine import Connection

from sealbill.app.audit import jsonable
from sealbill.app.context import Actor
from sealbill.app.errors import NotFound, PreconditionFailed
from sealbill.store.parties import records as parties


def org_id_by_slug(conn: Connection, actor: Actor, slug: str) -> int:
    """The organization's id; an actor scoped elsewhere gets "not found" like a wrong slug."""
    try:
        org_id = int(parties.organization_by_slug(conn, slug)["id"])
    except parties.NotFound:
        raise NotFound(f"organization {slug!r} not found") from None
    actor.require_org(org_id)
    return org_id


def etag(representation: Any) -> str:
    """A strong ETag of a resource's representation (changes whenever any field does)."""
    data = json.dumps(jsonable(representation), sort_keys=True, separators=(",", ":"))
    return '"' + hashlib.sha256(data.encode()).hexdigest()[:32] + '"'


def check_if_match(if_match: str | None, current: Any) -> None:
    """``If-Match`` given and not the current ETag: someone changed it since it was read."""
    if if_match is not None and if_match.strip() not in ("*", etag(current)):
        raise PreconditionFailed("the object changed since it was read (If-Match does not "
                                 "match its current ETag); read it again")


def refuse_nulls(table: Any, changes: dict[str, Any], record: str) -> None:
    """A patch may clear an optional field (``null``), never a required one."""
    from sealbill.app.errors import Invalid, Problem

    problems = [Problem(name, "cannot be empty") for name, value in changes.items()
                if value is None and name in table.c and not table.c[name].nullable]
    if problems:
        raise Invalid(f"{record}: {len(problems)} problem(s); nothing was written", problems)
