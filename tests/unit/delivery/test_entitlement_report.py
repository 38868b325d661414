"""Every change of entitlement is listed whatever its size; the send-time policy rules."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.address_policy import AddressPolicy
from sealbill.domain.delivery_plan import DeliveryPolicy, LinkFact, PlannedEnvelope, evaluate
from sealbill.domain.send_policy import PolicyFacts, envelope_digest, violations

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def env(i: int, *emails: str) -> PlannedEnvelope:
    recipients = tuple((100 * i + k, e) for k, e in enumerate(emails))
    return PlannedEnvelope(i, f"F-{i:06d}", i, f"A{i:04d}", recipients, 1000, "EUR")


def links(plan: list[PlannedEnvelope], unexplained: set[tuple[int, int]] = frozenset()
          ) -> list[LinkFact]:
    return [LinkFact(e.account_id, cid, NOW, (e.account_id, cid) not in unexplained,
                     "forged" if (e.account_id, cid) in unexplained else "", True)
            for e in plan for cid, _ in e.recipients]


def kinds(report: dict, kind: str) -> dict:
    return next(f for f in report["findings"] if f["kind"] == kind)


@given(st.integers(min_value=5, max_value=400), st.data())
def test_every_changed_account_is_listed_whatever_the_plan_size(n: int, data: st.DataObject
                                                                ) -> None:
    changed = data.draw(st.sets(st.integers(1, n), min_size=1, max_size=min(n, 30)))
    previous = [env(i, f"b{i}@c{i}.fr") for i in range(1, n + 1)]
    plan = [env(i, f"new{i}@c{i}.fr" if i in changed else f"b{i}@c{i}.fr")
            for i in range(1, n + 1)]
    report = evaluate(plan, previous, links(plan), DeliveryPolicy(), NOW).report()
    listed = kinds(report, "recipient_changes")
    assert listed["count"] == len(changed) and len(listed["items"]) == len(changed)
    assert {item["account"] for item in listed["items"]} == {f"A{i:04d}" for i in changed}
    for i in changed:
        assert any(f"A{i:04d}" in line and f"new{i}@c{i}.fr" in line for line in report["lines"])


@given(st.integers(min_value=1, max_value=500))
def test_one_unexplained_recipient_holds_by_count_whatever_the_plan_size(n: int) -> None:
    plan = [env(i, f"b{i}@c{i}.fr") for i in range(1, n + 1)]
    plan[0] = env(1, "b1@c1.fr", "eve@outsider.fr")
    result = evaluate(plan, None, links(plan, {(1, 101)}), DeliveryPolicy(), NOW)
    fan_in = kinds(result.report(), "fan_in_unexplained")
    assert result.verdict == "hold" and fan_in["count"] == 1 and fan_in["limit"] == 0
    assert fan_in["items"][0]["email"] == "eve@outsider.fr"


def test_an_archive_change_holds_and_is_shown() -> None:
    plan = [env(1, "b1@c1.fr")]
    result = evaluate(plan, plan, links(plan), DeliveryPolicy(), NOW,
                      archive="new@acme.fr", previous_archive="old@acme.fr")
    assert result.verdict == "hold"
    assert "    archive copy: old@acme.fr -> new@acme.fr" in result.lines()
    same = evaluate(plan, plan, links(plan), DeliveryPolicy(), NOW, archive="old@acme.fr",
                    previous_archive="OLD@acme.fr")
    assert same.verdict == "proceed"


POLICY = AddressPolicy(own_domains=frozenset({"acme.fr"}),
                       own_addresses=frozenset({"archive@acme.fr"}))
RECIPIENTS = ((7, "b@client.fr"),)


def facts(**changes: object) -> PolicyFacts:
    base = {"internal_test": False, "planned_archive": "archive@acme.fr",
            "archive_now": "archive@acme.fr", "envelope_recipients": RECIPIENTS,
            "approval_required": False, "approved_sha256": ""}
    return PolicyFacts(**{**base, **changes})  # type: ignore[arg-type]


def rules(found: list) -> set[str]:
    return {v.rule for v in found}


def test_a_planned_message_passes_the_policy_rules() -> None:
    assert violations(1, RECIPIENTS, ("b@client.fr", "archive@acme.fr"), POLICY, facts()) == []


def test_reserved_own_or_placeholder_recipients_are_refused_even_if_verified() -> None:
    for bad in ("x@localhost", "noreply@client.fr", "sales@acme.fr", "x@[10.0.0.1]"):
        found = violations(1, ((7, bad),), (bad,), POLICY,
                           facts(envelope_recipients=((7, bad),), planned_archive=""))
        assert "address_policy" in rules(found), bad


def test_an_archive_not_in_the_plan_is_refused() -> None:
    assert "archive" in rules(violations(1, RECIPIENTS, ("b@client.fr", "other@acme.fr"),
                                         POLICY, facts(archive_now="other@acme.fr")))
    assert "archive" in rules(violations(1, RECIPIENTS, ("b@client.fr", "archive@acme.fr"),
                                         POLICY, facts(planned_archive="")))


def test_an_approved_envelope_must_not_differ_from_what_was_approved() -> None:
    approved = envelope_digest(1, RECIPIENTS, "archive@acme.fr")
    ok = facts(approval_required=True, approved_sha256=approved)
    assert violations(1, RECIPIENTS, ("b@client.fr", "archive@acme.fr"), POLICY, ok) == []
    wider = ((7, "b@client.fr"), (9, "eve@other.fr"))
    found = violations(1, wider, ("b@client.fr", "eve@other.fr", "archive@acme.fr"), POLICY,
                       facts(approval_required=True, approved_sha256=approved,
                             envelope_recipients=wider))
    assert rules(found) == {"approval"}


def test_missing_facts_are_undecidable() -> None:
    found = violations(1, RECIPIENTS, ("b@client.fr",), POLICY, facts(internal_test=None))
    assert rules(found) == {"undecidable"}
    assert rules(violations(1, RECIPIENTS, ("b@client.fr",), None, facts())) == {"undecidable"}
