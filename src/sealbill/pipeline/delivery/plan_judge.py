"""Judge a stored delivery plan against the previous cycle's, a group of accounts at a time.

The accounts of both plans are taken in ascending order, :data:`GROUP` at a time; for each
group, every envelope of those accounts in the plan and in the previous plan is read, with
the link facts of the (account, contact) pairs whose message may still go out and the contact
history of the pairs that changed, and given to :class:`sealbill.domain.plan_tally.PlanTally`;
the addresses' fan-in is counted by the database (``store/delivery/plan_fan_in.py``).

Invariants: the verdict and report are those of :func:`sealbill.domain.delivery_plan.evaluate`
over the whole plan (``tests/unit/delivery/test_plan_tally.py``,
``tests/integration/delivery/test_plan_chunks.py``); what the process holds is a group's rows,
the tally's counters and first items, and the findings listed in full.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from sealbill.domain.delivery_plan import DeliveryPolicy
from sealbill.domain.entitlement_changes import changed_pairs
from sealbill.domain.plan_tally import Placed, PlanTally
from sealbill.store.delivery import plan_links, plan_reads
from sealbill.store.delivery import plans as store
from sealbill.store.delivery.plan_fan_in import BEFORE, NOW, FanInCount

GROUP = 1000  # accounts judged together
FINISHED = ("sent", "failed_permanent")  # outbox states a message never leaves again


def name_is_safe(name: str) -> bool:
    """No control character, line or paragraph separator (a header could be split on it)."""
    if name.isprintable():  # no character of category C* or Z* but the ASCII space
        return True
    return not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch == "\u0085"
                   for ch in name)


def _placed(rows: Sequence[Mapping[str, Any]]) -> list[Placed]:
    return [(int(row["id"]), store.to_planned(row)) for row in rows]


def judge(conn: Connection, org_id: int, plan_id: int, previous_id: int | None,
          policy: DeliveryPolicy, now: datetime, archive: str | None
          ) -> tuple[str, dict[str, Any]]:
    """The plan's verdict and report (the report as stored on the plan)."""
    tally = PlanTally(policy, now, first=previous_id is None)
    fan = FanInCount(conn)
    plan_ids = [plan_id] if previous_id is None else [plan_id, previous_id]
    account_ids = plan_reads.plan_accounts(conn, org_id, plan_ids)
    for start in range(0, len(account_ids), GROUP):
        group = account_ids[start:start + GROUP].tolist()
        rows = plan_reads.envelopes_of_accounts(conn, org_id, plan_id, group)
        current = _placed(rows)
        before = [] if previous_id is None else _placed(
            plan_reads.envelopes_of_accounts(conn, org_id, previous_id, group))
        # Links are judged as they are now only where a message may still go out: an
        # envelope already sent (kept as is by a replan) went to contacts verified then.
        pairs = [(env.account_id, cid) for (_, env), row in zip(current, rows, strict=True)
                 if row["outbox_status"] not in FINISHED for cid, _ in env.recipients]
        links = plan_links.link_facts(conn, org_id, pairs, now, name_is_safe)
        evidence = store.change_evidence(conn, org_id, changed_pairs(
            [env for _, env in current], [env for _, env in before]))
        tally.add(current, before, links, evidence)
        fan.add(NOW, current)
        fan.add(BEFORE, before)
    counted = fan.result(policy, tally.unexplained_addresses())
    fan.close()
    evaluation = tally.evaluation(
        counted, archive=archive,
        previous_archive=None if previous_id is None
        else store.plan_archive(conn, org_id, previous_id))
    report = evaluation.report()
    report["archive"] = archive
    report["previous_plan_id"] = previous_id
    report["policy"] = policy.as_dict()
    return evaluation.verdict, report
