"""The plan judged a group of accounts at a time (domain/plan_tally.py) gives the verdict and
the report — every count, sampled item and listed change, in the same order — of
:func:`evaluate` over the whole plan, whatever the grouping of the accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sealbill.domain.delivery_plan import DeliveryPolicy, LinkFact, PlannedEnvelope, evaluate
from sealbill.domain.entitlement_changes import changed_pairs
from sealbill.domain.plan_tally import PlanTally, fan_in_whole

NOW = datetime(2026, 11, 1, tzinfo=UTC)
ADDRESSES = ("a@x.fr", "A@X.fr", "b@y.fr", "c@z.fr", "d@z.fr", "e@w.fr", "f@v.fr")
# small limits, so that the fan-in, growth and sampled findings all occur
POLICY = DeliveryPolicy.from_mapping({"max_fan_in": 2, "fan_in_growth": 1,
                                      "recipient_cap": 2})


@st.composite
def envelopes(draw: st.DrawFn, accounts: int) -> list[PlannedEnvelope]:
    out = []
    for i in range(draw(st.integers(0, 30))):
        account = draw(st.integers(1, accounts))
        picked = draw(st.lists(st.integers(0, len(ADDRESSES) - 1), max_size=4, unique=True))
        out.append(PlannedEnvelope(
            i + 1, f"F-{i:04d}", account, f"A{account:03d}",
            tuple(sorted((10 * c + 1, ADDRESSES[c]) for c in picked)),
            draw(st.sampled_from([0, 50, 1000, 20_000, 500_000])),
            draw(st.sampled_from(["EUR", "EUR", "USD"])),
            draw(st.sampled_from(["invoice", "invoice", "credit_note"]))))
    return out


def _links(plan: list[PlannedEnvelope], data: st.DataObject) -> list[LinkFact]:
    pairs = sorted({(e.account_id, cid) for e in plan for cid, _ in e.recipients})
    return [LinkFact(a, c, NOW - timedelta(hours=data.draw(st.sampled_from([1, 100]))),
                     explained := data.draw(st.booleans()), "" if explained else f"why {a}",
                     data.draw(st.booleans()))
            for a, c in pairs]


def _evidence(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    return {pair: [{"contact_id": pair[1], "event": "verified", "actor": f"op{pair[0]}"}]
            for pair in pairs}


def _by_group(groups: list[set[int]], placed: list[tuple[int, PlannedEnvelope]], index: int
              ) -> list[tuple[int, PlannedEnvelope]]:
    return [(place, env) for place, env in placed if env.account_id in groups[index]]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_tally_over_any_grouping_equals_the_whole_evaluation(data: st.DataObject) -> None:
    accounts = data.draw(st.integers(1, 8))
    plan = data.draw(envelopes(accounts))
    previous = data.draw(st.none() | envelopes(accounts))
    links = _links(plan, data)
    pairs = changed_pairs(plan, previous or [])
    whole = evaluate(plan, previous, links, POLICY, NOW, archive="arch@acme.fr",
                     previous_archive="arch@acme.fr", evidence=_evidence(pairs))
    # the accounts in groups of any sizes, given in any order
    ids = data.draw(st.permutations(range(1, accounts + 1)))
    cuts = sorted(data.draw(st.sets(st.integers(1, accounts), max_size=accounts)))
    groups = [set(ids[a:b]) for a, b in zip([0, *cuts], [*cuts, accounts], strict=True)]
    tally = PlanTally(POLICY, NOW, first=previous is None)
    current = list(enumerate(plan))
    before = list(enumerate(previous or []))
    for index, group in enumerate(groups):
        tally.add(_by_group(groups, current, index), _by_group(groups, before, index),
                  [lf for lf in links if lf.account_id in group],
                  _evidence({p for p in pairs if p[0] in group}))
    fan = fan_in_whole(plan, previous, POLICY)
    assert tally.evaluation(fan, archive="arch@acme.fr", previous_archive="arch@acme.fr"
                            ).report() == whole.report()


def test_a_sampled_finding_keeps_its_first_items_by_place_across_groups() -> None:
    """Twenty-five envelopes without a recipient, met in three groups out of order: the
    report shows the plan's first twenty, in plan order, and counts twenty-five."""
    plan = [PlannedEnvelope(i, f"F-{i}", i, f"A{i:03d}", (), 100, "EUR")
            for i in range(1, 26)]
    tally = PlanTally(DeliveryPolicy(), NOW, first=True)
    placed = list(enumerate(plan))
    for group in (placed[20:], placed[:7], placed[7:20]):
        tally.add(group, [], [], {})
    found = next(f for f in tally.evaluation(fan_in_whole(plan, None, DeliveryPolicy()),
                                             archive=None, previous_archive=None).findings
                 if f.kind == "no_recipient")
    assert found.count == 25
    assert [item["invoice"] for item in found.items] == [f"F-{i}" for i in range(1, 21)]
