"""The delivery plan's evaluation a group of accounts at a time: the same verdict and report as
:func:`sealbill.domain.delivery_plan.evaluate`, in memory that does not grow with the plan.

The plan stage (``pipeline/delivery/plan_judge.py``) reads the plan and the previous one a
group of accounts at a time — every envelope of those accounts in either plan, each with its
*place* (its envelope id: the plan's order) — and gives each group to :meth:`PlanTally.add`
with the link facts and change evidence of those accounts. The tally keeps counters, the
first 20 items of each sampled finding by place (or by (account, contact) for the link
findings, the order :func:`evaluate` reads them in), and the listed-in-full findings
(recipient changes, unexplained fan-in), which are as long as what they list. The addresses'
fan-in (how many accounts each address receives for, now and before) needs every envelope at
once: the store counts it (``store/delivery/plan_fan_in.py``) and gives :class:`FanIn`.

Invariants:
- groups partition the accounts of both plans: an account's envelopes (in this plan and in
  the previous one) all come in the same group, whatever the group's size or order;
- :meth:`PlanTally.evaluation` equals :func:`evaluate` over the whole plan
  (``tests/unit/delivery/test_plan_tally.py`` checks it on generated plans and groupings).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sealbill.domain import delivery_plan as dp
from sealbill.domain import entitlement_changes as changes
from sealbill.domain.delivery_plan import DeliveryPolicy, Evaluation, LinkFact, PlannedEnvelope

Placed = tuple[int, PlannedEnvelope]  # (place in its plan, envelope)


class FirstItems:
    """How many items, and the first ``dp._SAMPLE`` of them by key (keys are unique)."""

    def __init__(self) -> None:
        self.count = 0
        self._kept: list[tuple[Any, Mapping[str, Any]]] = []

    def add(self, key: Any, item: Mapping[str, Any] | None) -> None:
        if item is None:
            return
        self.count += 1
        self._kept.append((key, item))
        if len(self._kept) > 4 * dp._SAMPLE:
            self._kept = self._first()

    def _first(self) -> list[tuple[Any, Mapping[str, Any]]]:
        return sorted(self._kept, key=lambda kept: kept[0])[:dp._SAMPLE]

    def counted(self) -> dp.Counted:
        return self.count, tuple(item for _, item in self._first())


@dataclass(frozen=True)
class FanIn:
    """What the store counted over every envelope: addresses over the maximum fan-in and
    grown since the previous plan (count, first items as :func:`evaluate` orders them), and
    for the addresses asked, how many accounts each receives for in this plan."""

    over_max: dp.Counted
    grown: dp.Counted
    receives_for: Mapping[str, int]


@dataclass
class PlanTally:
    policy: DeliveryPolicy
    now: datetime
    first: bool  # no previous plan
    envelopes: int = 0
    no_rcpt: FirstItems = field(default_factory=FirstItems)
    over: FirstItems = field(default_factory=FirstItems)
    unexplained_links: FirstItems = field(default_factory=FirstItems)
    unsafe: FirstItems = field(default_factory=FirstItems)
    recent: FirstItems = field(default_factory=FirstItems)
    new_pairs: FirstItems = field(default_factory=FirstItems)
    domains: FirstItems = field(default_factory=FirstItems)
    more: FirstItems = field(default_factory=FirstItems)
    far: FirstItems = field(default_factory=FirstItems)
    appearing: FirstItems = field(default_factory=FirstItems)
    disappearing: FirstItems = field(default_factory=FirstItems)
    # listed in full: (place, item) / address -> [(place, recipient index), item]
    changed: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    unexplained_fan: dict[str, list[tuple[tuple[int, int], dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(list))

    def add(self, current: Sequence[Placed], previous: Sequence[Placed],
            links: Sequence[LinkFact], evidence: changes.Evidence) -> None:
        """A group of accounts: their envelopes in this plan and in the previous one, the
        link facts of their (account, contact) pairs, the evidence of their changed pairs."""
        current = sorted(current, key=lambda p: p[0])
        previous = sorted(previous, key=lambda p: p[0])
        self.envelopes += len(current)
        for place, env in current:
            self.no_rcpt.add(place, dp.no_recipient_item(env))
            self.over.add(place, dp.over_cap_item(env, self.policy))
        window = self.now - timedelta(hours=self.policy.recent_verification_hours)
        for lf in links:
            pair = (lf.account_id, lf.contact_id)
            unexplained, unsafe, recent = dp.link_items(lf, window)
            self.unexplained_links.add(pair, unexplained)
            self.unsafe.add(pair, unsafe)
            self.recent.add(pair, recent)
        self._fan_unexplained(current, links)
        if not self.first:
            self._changes(current, previous, evidence)
            self._diff(current, previous)

    def _fan_unexplained(self, current: Sequence[Placed], links: Sequence[LinkFact]) -> None:
        explained = {(lf.account_id, lf.contact_id): lf for lf in links}
        for place, env in current:
            for index, (cid, email) in enumerate(env.recipients):
                fact = explained.get((env.account_id, cid))
                if fact is not None and not fact.explained:
                    self.unexplained_fan[email.lower()].append((
                        (place, index), {"account": env.account_reference,
                                         "why": fact.explanation}))

    def _changes(self, current: Sequence[Placed], previous: Sequence[Placed],
                 evidence: changes.Evidence) -> None:
        listed = changes.recipient_changes([env for _, env in current],
                                           [env for _, env in previous], evidence)
        before = {env.account_id: env for _, env in previous}  # the last one, as there
        places = [place for place, env in current if env.account_id in before
                  and _addresses(before[env.account_id]) != _addresses(env)]
        self.changed += zip(places, listed, strict=True)

    def _diff(self, current: Sequence[Placed], previous: Sequence[Placed]) -> None:
        cur = _per_account_placed(current)
        prev = _per_account_placed(previous)
        for account_id, (place, env) in cur.items():
            before = prev.get(account_id)
            if before is None:
                self.appearing.add(place, {"account": env.account_reference})
                continue
            found = dp.account_diff(env, before[1], self.policy)
            self.new_pairs.add(place, found.new_pair)
            self.domains.add(place, found.domain)
            self.more.add(place, found.more)
            self.far.add(place, found.far)
        for account_id, (place, env) in prev.items():
            if account_id not in cur:
                self.disappearing.add(place, {"account": env.account_reference})

    def unexplained_addresses(self) -> list[str]:
        """The addresses whose fan-in :class:`FanIn` must count (``receives_for``)."""
        return sorted(self.unexplained_fan)

    def evaluation(self, fan: FanIn, *, archive: str | None,
                   previous_archive: str | None) -> Evaluation:
        n, policy = self.envelopes, self.policy
        findings = dp.absolute_findings(
            n, policy, first=self.first, no_rcpt=self.no_rcpt.counted(),
            over=self.over.counted(), big=fan.over_max,
            unexplained=self.unexplained_links.counted(), unsafe=self.unsafe.counted(),
            recent=self.recent.counted())
        unexplained = []
        for email in sorted(self.unexplained_fan):
            items = [item for _, item in sorted(self.unexplained_fan[email],
                                                key=lambda e: e[0])]
            receives = fan.receives_for[email]
            unexplained.append({"email": email, "receives_for": receives,
                                "explained": receives - len(items), "unexplained": items})
        findings.append(dp.unexplained_finding(unexplained, policy))
        if not self.first:
            findings.append(dp.changes_finding(
                [item for _, item in sorted(self.changed, key=lambda c: c[0])]))
            findings.append(dp.archive_finding(archive, previous_archive, policy))
            findings += dp.diff_findings(
                n, policy, new_pairs=self.new_pairs.counted(), grown=fan.grown,
                domains=self.domains.counted(), more=self.more.counted(),
                appearing=self.appearing.counted(), disappearing=self.disappearing.counted(),
                far=self.far.counted())
        return dp.assemble(findings, n, archive, policy, first=self.first)


def _addresses(env: PlannedEnvelope) -> set[str]:
    return {email.lower() for _, email in env.recipients}


def _per_account_placed(placed: Sequence[Placed]) -> dict[int, Placed]:
    """:func:`dp.per_account`, each account with the place of its *first* envelope (where
    :func:`evaluate` meets it), in that order."""
    first: dict[int, int] = {}
    for place, env in placed:
        first.setdefault(env.account_id, place)
    chosen = dp.per_account([env for _, env in placed])
    return {account_id: (first[account_id], env) for account_id, env in
            sorted(chosen.items(), key=lambda kv: first[kv[0]])}


def fan_in_whole(plan: Sequence[PlannedEnvelope], previous: Sequence[PlannedEnvelope] | None,
                 policy: DeliveryPolicy) -> FanIn:
    """:class:`FanIn` of a plan held in memory whole (the reference the store's count is
    checked against)."""
    now = dp.fan_in(plan)
    return FanIn(dp.counted(dp.fan_in_over(now, policy)),
                 dp.counted(dp.fan_in_grown(now, dp.fan_in(previous or ()), policy)),
                 {address: len(accounts) for address, accounts in now.items()})
