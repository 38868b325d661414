"""MIME building refuses what could become a header; the plan policy holds what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sealbill.domain.delivery_plan import (
    DeliveryPolicy,
    LinkFact,
    PlannedEnvelope,
    Threshold,
    evaluate,
)
from sealbill.mail import mime
from sealbill.store.parties.records import Recipient

NOW = datetime(2026, 11, 1, tzinfo=UTC)
CONTENT = mime.Content("Facture F-1", b"text F-1", b"<p>F-1</p>", b"%PDF", "f.pdf")


def _build(**overrides: Any) -> mime.Outgoing:
    args: dict[str, Any] = {
        "sender": mime.Sender("Seller", "billing@seller.example"),
        "recipients": [Recipient(1, "a@client.example")], "display_names": {1: "Ann"},
        "archive_email": None, "message_id": "<inv-1.env-1@seller.example>", "date": NOW,
        "content": CONTENT}
    return mime.build_message(**{**args, **overrides})


@pytest.mark.parametrize("name", ["Eve\r\nBcc: eve@evil.example", "Eve\nX", "Eve\x00",
                                  "Eve\u2028Bcc: x@y.z"])
def test_a_display_name_with_a_line_break_is_refused(name: str) -> None:
    with pytest.raises(mime.UnsafeHeaderValue):
        _build(display_names={1: name})


def test_recipients_must_be_contact_records_not_strings() -> None:
    with pytest.raises(TypeError):
        _build(recipients=["a@client.example"])


def test_the_message_is_deterministic_and_the_archive_is_envelope_only() -> None:
    first = _build(archive_email="archive@seller.example")
    assert first.data == _build(archive_email="archive@seller.example").data
    assert first.rcpt_to == ("a@client.example", "archive@seller.example")
    assert b"archive@seller.example" not in first.data
    assert b"\r\nTo: Ann <a@client.example>\r\n" in first.data


def _env(account: int, emails: list[str], amount: int = 1000) -> PlannedEnvelope:
    return PlannedEnvelope(account, f"F-{account}", account, f"A{account}",
                           tuple((account * 100 + i, e) for i, e in enumerate(emails)),
                           amount, "EUR")


def _links(plan: list[PlannedEnvelope], **kw: Any) -> list[LinkFact]:
    at = kw.get("verified_at", NOW - timedelta(days=90))
    return [LinkFact(e.account_id, cid, at, kw.get("explained", True), "", True)
            for e in plan for cid, _ in e.recipients]


def _kinds(plan: list[PlannedEnvelope], previous: list[PlannedEnvelope] | None,
           policy: DeliveryPolicy | None = None, **kw: Any) -> set[str]:
    result = evaluate(plan, previous, _links(plan, **kw), policy or DeliveryPolicy(), NOW)
    return {f.kind for f in result.findings if f.holds}


def test_same_plan_as_last_cycle_proceeds() -> None:
    plan = [_env(i, [f"b{i}@c{i}.example"]) for i in range(1, 30)]
    assert _kinds(plan, plan) == set()
    assert evaluate(plan, plan, _links(plan), DeliveryPolicy(), NOW).verdict == "proceed"


def test_first_cycle_proceeds_by_default_and_can_be_held() -> None:
    plan = [_env(1, ["b@c.example"])]
    assert _kinds(plan, None) == set()
    assert _kinds(plan, None, DeliveryPolicy(first_cycle="hold")) == {"first_cycle"}


def test_a_swap_between_accounts_holds_through_the_contact_history() -> None:
    plan = [_env(1, ["b@c.example"])]
    assert _kinds(plan, None, explained=False) == {"unexplained_links", "fan_in_unexplained"}


def test_fan_in_growth_and_recipient_changes_hold() -> None:
    before = [_env(i, [f"b{i}@c{i}.example"]) for i in range(1, 11)]
    now = [_env(i, [f"b{i}@c{i}.example", "grab@evil.example"]) for i in range(1, 11)]
    kinds = _kinds(now, before)
    assert {"fan_in_grown", "new_pairs", "domain_changes", "more_recipients"} <= kinds


def test_amounts_far_from_last_cycle_and_accounts_disappearing() -> None:
    before = [_env(i, [f"b{i}@c{i}.example"]) for i in range(1, 40)]
    now = [_env(i, [f"b{i}@c{i}.example"], amount=1_000_000) for i in range(1, 12)]
    policy = DeliveryPolicy(amounts_far=Threshold(3), accounts_disappearing=Threshold(5))
    assert {"amounts_far", "accounts_disappearing"} <= _kinds(now, before, policy)


def test_policy_overrides_refuse_unknown_settings() -> None:
    policy = DeliveryPolicy.from_mapping({"max_fan_in": 3, "new_pairs_on_existing_accounts":
                                          {"count": 1, "share": 0.5}})
    assert policy.max_fan_in == 3 and policy.new_pairs_on_existing_accounts.count == 1
    with pytest.raises(ValueError, match="unknown"):
        DeliveryPolicy.from_mapping({"max_fanin": 3})


def test_credit_notes_are_not_compared_as_the_cycles_amount_nor_counted_twice() -> None:
    """A run with small credit notes beside the invoices: amounts are compared invoice to
    invoice; an account with two documents is one account for the recipient findings."""
    from dataclasses import replace

    before = [_env(i, [f"b{i}@c{i}.example"], amount=100_000) for i in range(1, 6)]
    credits = [replace(_env(i, [f"b{i}@c{i}.example", f"x{i}@n{i}.example"], amount=100),
                       invoice_id=100 + i, invoice_number=f"AV-{i}", kind="credit_note")
               for i in range(1, 6)]
    invoices = [_env(i, [f"b{i}@c{i}.example", f"x{i}@n{i}.example"], amount=100_000)
                for i in range(1, 6)]
    result = evaluate([*invoices, *credits], before, _links([*invoices, *credits]),
                      DeliveryPolicy(amounts_far=Threshold(0)), NOW)
    found = {f.kind: f for f in result.findings}
    assert found["amounts_far"].count == 0
    assert found["new_pairs"].count == 5  # one per account, not one per document
    only_credit = [credits[0]]  # an account whose only document this cycle is a credit note
    result = evaluate(only_credit, before[:1], _links(only_credit),
                      DeliveryPolicy(amounts_far=Threshold(0)), NOW)
    assert {f.kind: f for f in result.findings}["amounts_far"].count == 0
