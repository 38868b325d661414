"""The seal rule's two places in a send (``domain/seal_guard.py`` says what it checks).

- :func:`message_violations`, in each message's claiming transaction: the organization's row
  and, per recipient, the contact, its billing link and the link's latest history event, read
  fresh (for a sender's whole batch at once, in the transaction that claims it) and judged
  against their seals. A row naming a key id this process does not hold makes
  it read its keyring directory again first (a ``sealing-keys rotate`` run elsewhere mid-send); a
  missing key is a violation, never a fresh key.
- :func:`history_halt`, once per ``run send`` before anything is sent: the whole sealed contact
  history (chain, seals, checkpoints). A damaged history halts the run with the findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection, Engine

from sealbill.domain import seal_guard
from sealbill.domain.guard import Violation
from sealbill.keys import KeyMissing, for_connection, refresh
from sealbill.store.delivery import alerts, seal_facts
from sealbill.store.delivery import plans as plan_store
from sealbill.store.parties import contact_log


def message_violations(conn: Connection, org_id: int, account_id: int,
                       recipients: Sequence[tuple[int, str]], mail_from: str,
                       rcpt_to: Sequence[str],
                       evidence: seal_guard.SealEvidence | None = None) -> list[Violation]:
    """The seal rule for one message; ``evidence``: its rows, when the caller read them for
    a whole batch in this transaction (:func:`seal_facts.evidence_many`), else read here."""
    try:
        keys = for_connection(conn).keys
        if evidence is None:
            evidence = seal_facts.evidence(conn, org_id, account_id,
                                           [c for c, _ in recipients])
        if not seal_guard.key_ids(evidence) <= set(keys.by_id):
            keys = refresh(conn).keys  # rotated by another process since we loaded it
    except KeyMissing as exc:
        return [Violation(seal_guard.RULE, str(exc), {})]
    return seal_guard.verdict(keys, account_id, tuple(recipients), mail_from, rcpt_to,
                              evidence)


def history_halt(engine: Engine, org_id: int, run_id: int) -> dict[str, Any] | None:
    """The whole sealed contact history checked once before the run sends anything (the
    per-message seal rule reads only each link's latest event): an edited, forged, deleted or
    cut event halts the run, with the findings as evidence. ``None``: the history is sound."""
    with engine.begin() as conn:
        try:
            found = contact_log.verify(conn, org_id).problems
        except KeyMissing as exc:
            found = [{"problem": "no key", "detail": str(exc)}]
        if not found:
            return None
        evidence = {"violations": [{"rule": "seal", "message": "the contact history does "
                                    "not verify (sealbill contacts verify-log)",
                                    "evidence": {"problems": found[:50]}}]}
        plan_store.set_run_status(conn, org_id, run_id, "halted",
                                  f"seal: the contact history does not verify "
                                  f"({len(found)} problem(s))")
        alerts.record(conn, org_id, cause="guard:seal", run_id=run_id, evidence=evidence,
                      message=f"run {run_id} halted before sending: contact history "
                              f"does not verify")
        return evidence
