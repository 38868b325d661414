"""Opening an incident from a ledger search, widening its scope, and the containment steps
that act on the affected accounts (revoking outstanding tokens, rotating public ids).

The same pipeline functions as ``sealbill incident open|rotate`` (and, for the steps the CLI
has no command of its own for, :mod:`sealbill.pipeline.incident.incident_steps`), so every step
lands
in the incident's timeline; each is audited.

Invariants: only roles that may act on runs (``runs.write`` or ``runs.approve``) open or act;
the search selects messages exactly as the console's ledger page does
(:mod:`sealbill.app.ledger_query`); a search with only a time window becomes a window scope
(as ``incident open --window``), any other the explicit list of the messages it matched; a
search that matches nothing opens nothing; a refused input writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.app import audit, incident_actions, ledger_query, webhooks
from sealbill.app import ids as public_ids
from sealbill.app.context import RUNS_APPROVE, RUNS_WRITE, Actor
from sealbill.app.errors import Forbidden, Invalid, Problem
from sealbill.app.incident_actions import _may_act
from sealbill.app.incident_actions import audit_incident as _audit
from sealbill.pipeline.incident import actions as pipeline
from sealbill.pipeline.incident import incident_steps

SEARCH_FIELDS = ("address", "account", "invoice", "since", "until")


def _criteria(form: Mapping[str, str]) -> ledger_query.Criteria:
    criteria = ledger_query.parse(**{k: form.get(k, "") for k in SEARCH_FIELDS})
    if criteria.empty:
        raise Invalid("search: 1 problem(s); nothing was written",
                      [Problem("address", "give at least one criterion of the search")])
    return criteria


def _message_ids(engine: Engine, org_id: int, criteria: ledger_query.Criteria) -> list[str]:
    with engine.begin() as conn:
        ids = [str(r.message_id) for r in ledger_query.matching(conn, org_id, criteria)]
    if not ids:
        raise Invalid("search: 1 problem(s); nothing was written",
                      [Problem("address", "the search matches no message of the ledger")])
    return ids


def open_from_ledger(engine: Engine, actor: Actor, org_id: int, *, title: str,
                     description: str, aware_at: str, search: Mapping[str, str],
                     pause: bool = False) -> int:
    """Open an incident on the messages a ledger search matches; with ``pause``, the kill
    switch in the same transaction. The ``incident.opened`` webhook is queued."""
    if not (actor.can(RUNS_WRITE) or actor.can(RUNS_APPROVE)):
        raise Forbidden(f"role {actor.role!r} may not open an incident")
    actor.require_org(org_id)
    problems = []
    if not title.strip():
        problems.append(Problem("title", "say what is suspected"))
    try:
        aware = pipeline.parse_time(aware_at, "aware_at")
    except ValueError as exc:
        problems.append(Problem("aware_at", str(exc)))
    if problems:
        raise Invalid(f"incident: {len(problems)} problem(s); nothing was written", problems)
    criteria = _criteria(search)
    ids = _message_ids(engine, org_id, criteria)
    scope = (pipeline.Scope(window=(criteria.since, criteria.until))  # type: ignore[arg-type]
             if criteria.window_only else pipeline.Scope(message_ids=tuple(sorted(ids))))
    searched = {k: v.strip() for k, v in search.items() if k in SEARCH_FIELDS and v.strip()}

    def opened(conn: Connection, incident_id: int) -> None:
        # in the incident's own transaction: the webhook and the audit entry, all or nothing
        public = public_ids.encode(conn, org_id, "incident", incident_id)
        webhooks.emit(conn, org_id, "incident.opened", f"incident:{incident_id}",
                      {"incident_id": public, "source": "ledger_search", "search": searched,
                       "aware_at": aware, "messages": len(ids)})
        audit.record(conn, actor, org_id, "incident.open", "incident", public,
                     after={"search": searched, "messages": len(ids), "paused": pause,
                            "scope": scope.to_json()})

    try:
        incident_id = pipeline.open_incident(engine, org_id, title=title.strip()[:200],
                                             aware_at=aware, scope=scope, actor=actor.name,
                                             pause=pause, description=description,
                                             then=opened)
    except ValueError as exc:
        raise Invalid("incident: 1 problem(s); nothing was written",
                      [Problem("aware_at", str(exc))]) from None
    return incident_id


def widen(engine: Engine, actor: Actor, org_id: int, incident_id: int, *,
          search: Mapping[str, str], reason: str) -> dict[str, int]:
    """Add the messages a ledger search matches to the incident's scope, with a reason."""
    _may_act(engine, actor, org_id, incident_id)
    if len(reason.strip()) < 3:
        raise Invalid("scope: 1 problem(s); nothing was written",
                      [Problem("reason", "give a reason")])
    ids = _message_ids(engine, org_id, _criteria(search))
    try:
        done = incident_steps.widen_scope(engine, org_id, incident_id, ids,
                                          reason=reason, actor=actor.name)
    except ValueError as exc:
        raise Invalid("scope: 1 problem(s); nothing was written",
                      [Problem("address", str(exc))]) from None
    result = {"added": done.added, "messages": done.total}
    _audit(engine, actor, org_id, incident_id, "incident.widen",
           {**result, "reason": reason.strip(),
            "search": {k: v for k, v in search.items() if k in SEARCH_FIELDS and v}})
    return result


def revoke_tokens(engine: Engine, actor: Actor, org_id: int, incident_id: int) -> int:
    """Revoke the outstanding codes and signed links of the affected accounts."""
    _may_act(engine, actor, org_id, incident_id)
    try:
        revoked = incident_steps.revoke_tokens(engine, org_id, incident_id, actor=actor.name)
    except ValueError as exc:
        raise Invalid("containment: 1 problem(s)", [Problem("", str(exc))]) from None
    _audit(engine, actor, org_id, incident_id, "incident.revoke_tokens",
           {"tokens_revoked": revoked})
    return revoked


def rotate(engine: Engine, actor: Actor, org_id: int, incident_id: int) -> dict[str, Any]:
    """New public ids for the affected accounts, their outstanding tokens revoked
    (``sealbill incident rotate``)."""
    rotation = incident_actions.rotate(engine, actor, org_id, incident_id)
    return {"accounts": [a["reference"] for a in rotation.accounts],
            "tokens_revoked": rotation.tokens_revoked}
