"""The guard's policy rules, beside its four rules of :mod:`sealbill.domain.guard` (pure).

Judged for each message in the claiming transaction, on facts read fresh there
(:mod:`sealbill.store.delivery.policy_facts`) and on the SMTP recipients of the exact bytes:

5. ``address_policy`` — every recipient, and the archive copy, passes the organization's address
   policy (:mod:`sealbill.domain.address_policy`) *now*, whatever the contact rows say: a
   reserved, placeholder or own address written straight into the tables is refused;
6. ``archive`` — the only SMTP recipient beyond the ``To:`` addresses is the archive copy the
   plan showed, and the organization's archive address is still that one: a changed archive
   address is a difference the plan must show, never an extra recipient added at send time;
7. ``approval`` — when a held plan was approved, the message goes to exactly the recipients the
   approver saw (the envelope's ``approved_sha256``), and the envelope row still says so.

Fail closed: a fact that could not be read (``None``) is a violation (``undecidable``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from sealbill.domain.address_policy import AddressPolicy
from sealbill.domain.guard import Violation
from sealbill.domain.message_facts import normalize_address


@dataclass(frozen=True)
class PolicyFacts:
    internal_test: bool | None  # the envelope's account is an internal test account
    planned_archive: str | None  # the plan's archive copy ("" when the plan has none)
    archive_now: str | None  # the organization's archive address now ("" when none)
    envelope_recipients: tuple[tuple[int, str], ...] | None  # the envelope row, now
    approval_required: bool | None  # the plan was held, then approved
    approved_sha256: str | None  # the digest the approver saw ("" when not approved)


def envelope_digest(account_id: int, recipients: Sequence[tuple[int, str]],
                    archive: str | None) -> str:
    """What an approval binds: the account, its recipients (contact id and address, in contact
    order) and the archive copy."""
    canonical = json.dumps({"account": account_id,
                            "recipients": sorted([c, normalize_address(e)]
                                                 for c, e in recipients),
                            "archive": normalize_address(archive) if archive else None},
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def violations(account_id: int, recipients: tuple[tuple[int, str], ...],
               rcpt_to: Sequence[str], policy: AddressPolicy | None,
               facts: PolicyFacts) -> list[Violation]:
    missing = [name for name, value in vars(facts).items() if value is None]
    if missing or policy is None:
        return [Violation("undecidable", "policy facts missing: the guard cannot decide",
                          {"missing": missing + ([] if policy else ["address_policy"])})]
    out = _addresses(recipients, rcpt_to, policy, facts)
    out += _archive(recipients, rcpt_to, facts)
    out += _approval(account_id, recipients, facts)
    return out


def _addresses(recipients: tuple[tuple[int, str], ...], rcpt_to: Sequence[str],
               policy: AddressPolicy, facts: PolicyFacts) -> list[Violation]:
    refused = []
    for cid, email in recipients:
        refusal = policy.refusal(email, internal_test=bool(facts.internal_test))
        if refusal is not None:
            refused.append({"contact_id": cid, **refusal.as_dict()})
    to = {normalize_address(e) for _, e in recipients}
    for extra in rcpt_to:
        if normalize_address(extra) not in to:
            refusal = policy.refusal(extra, archive=True)
            if refusal is not None:
                refused.append({"contact_id": None, "archive": True, **refusal.as_dict()})
    if not refused:
        return []
    return [Violation("address_policy", "an address that may never receive an invoice "
                      "(reserved, placeholder or the organization's own)",
                      {"refused": refused})]


def _archive(recipients: tuple[tuple[int, str], ...], rcpt_to: Sequence[str],
             facts: PolicyFacts) -> list[Violation]:
    out = []
    planned = normalize_address(facts.planned_archive) if facts.planned_archive else None
    now = normalize_address(facts.archive_now) if facts.archive_now else None
    if planned != now:
        out.append(Violation("archive", "the archive address changed since the plan was made",
                             {"planned": planned, "now": now}))
    to = {normalize_address(e) for _, e in recipients}
    extras = sorted({normalize_address(r) for r in rcpt_to} - to)
    if extras and extras != [planned]:
        out.append(Violation("archive", "an SMTP recipient the plan did not show",
                             {"extra": extras, "planned_archive": planned}))
    return out


def _approval(account_id: int, recipients: tuple[tuple[int, str], ...],
              facts: PolicyFacts) -> list[Violation]:
    out = []
    row = facts.envelope_recipients or ()
    if sorted(recipients) != sorted(row):
        out.append(Violation("approval", "the envelope's recipients changed since it was read",
                             {"sending_to": [e for _, e in recipients],
                              "envelope_now": [e for _, e in row]}))
    if facts.approval_required:
        digest = envelope_digest(account_id, recipients, facts.planned_archive or None)
        if digest != facts.approved_sha256:
            out.append(Violation("approval", "recipients differ from what the approver saw",
                                 {"sending_to": [e for _, e in recipients],
                                  "approved_sha256": facts.approved_sha256 or None,
                                  "sha256": digest}))
    return out
