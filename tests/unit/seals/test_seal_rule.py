"""The seal rule of the guard on plain rows (domain/seal_guard.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sealbill.domain import seal_guard
from sealbill.domain.seal_guard import RecipientRows, SealEvidence
from sealbill.domain.seals import EVENT_FIELDS, Keys, chained_fields, event_hash, key_id

KEY = b"k" * 32
KEYS = Keys(key_id(KEY), {key_id(KEY): KEY})
AT = datetime(2026, 11, 1, 8, tzinfo=UTC)
SENDER, ARCHIVE, EMAIL = "factures@seller.example", "archive@seller.example", "a@client.example"


def sealed(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    from sealbill.domain.seals import row_fields

    seal, kid = KEYS.seal(kind, row_fields(kind, row))
    return {**row, "seal": seal, "seal_key_id": kid}


def event(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in EVENT_FIELDS}
    row.update(organization_id=1, seq=9, contact_id=7, account_id=3, role="billing",
               event="verified", actor="ops", method="operator", new_value=EMAIL, at=AT,
               prev_hash="0" * 64)
    row.update(changes)
    row["row_hash"] = event_hash(row)
    row["seal"], row["seal_key_id"] = KEYS.seal("contact_event",
                                                chained_fields(1, int(row["seq"]),
                                                               row["row_hash"]))
    return row


def evidence(**override: Any) -> SealEvidence:
    org = sealed("organization", {"id": 1, "slug": "s", "sender_email": SENDER,
                                  "sender_name": "S", "archive_email": ARCHIVE})
    contact = sealed("contact", {"id": 7, "organization_id": 1, "email": EMAIL})
    link = sealed("link", {"id": 5, "organization_id": 1, "contact_id": 7, "account_id": 3,
                           "role": "billing", "status": "verified", "verified_email": EMAIL,
                           "verification_method": "operator", "verified_at": AT})
    rows = {"contact": contact, "link": link, "last_event": event()}
    org = override.pop("organization", org)
    rows.update(override)
    return SealEvidence(org, {7: RecipientRows(**rows)})


def judge(ev: SealEvidence, rcpt: tuple[str, ...] = (EMAIL, ARCHIVE)) -> list[Any]:
    return seal_guard.verdict(KEYS, 3, ((7, EMAIL),), SENDER, rcpt, ev)


def test_sealed_evidence_passes() -> None:
    assert judge(evidence()) == []


def test_each_unsealed_or_disagreeing_fact_is_a_seal_violation() -> None:
    base = evidence().recipients[7]
    cases = {
        "contact edited": {"contact": {**base.contact, "email": "x@evil.example"}},  # type: ignore[dict-item]
        "link forged": {"link": {**base.link, "account_id": 3, "seal": "0" * 64}},  # type: ignore[dict-item]
        "unknown key": {"link": {**base.link, "seal_key_id": "f" * 16}},  # type: ignore[dict-item]
        "no event": {"last_event": None},
        "event revoked": {"last_event": event(event="revoked", new_value=None)},
        "event edited": {"last_event": {**event(), "new_value": "x@evil.example"}},
        "archive changed": {"organization": {**evidence().organization,  # type: ignore[dict-item]
                                             "archive_email": "x@evil.example"}},
    }
    for name, change in cases.items():
        found = judge(evidence(**change), (EMAIL,))
        assert found and all(v.rule == "seal" for v in found), name


def test_an_smtp_recipient_outside_the_sealed_set_is_refused() -> None:
    found = judge(evidence(), (EMAIL, ARCHIVE, "bcc@evil.example"))
    assert [v.evidence["addresses"] for v in found] == [["bcc@evil.example"]]


def test_the_remembered_organization_check_follows_every_value_and_the_keyring() -> None:
    """The organization's check is remembered per (keyring, row): after the valid row, an
    edit of any value, another key under the same id or a keyring without the key is judged
    afresh (as the check without the memo would)."""
    from sealbill.domain.seals import Check, check_row

    org = dict(evidence().organization)  # type: ignore[arg-type]
    other = b"o" * 32
    forged_key = Keys(key_id(KEY), {key_id(KEY): other})
    without = Keys(key_id(other), {key_id(other): other})
    assert seal_guard.organization_check(KEYS, org) is Check.VALID
    for name, value in [("sender_email", "x@evil.example"), ("archive_email", None),
                        ("slug", "t"), ("sender_name", "T"), ("id", 2), ("seal", "0" * 64)]:
        edited = {**org, name: value}
        assert seal_guard.organization_check(KEYS, edited) is check_row(
            KEYS, "organization", edited) is not Check.VALID, name
        assert judge(evidence(organization=edited)), name
    assert seal_guard.organization_check(forged_key, org) is Check.MISMATCH
    assert seal_guard.organization_check(without, org) is Check.UNKNOWN_KEY
    assert seal_guard.organization_check(KEYS, {**org, "x": {}}) is Check.VALID  # unhashable
    assert seal_guard.organization_check(KEYS, org) is Check.VALID
