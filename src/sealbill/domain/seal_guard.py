"""The guard's seal rule: every address on the wire is entitled by *sealed* evidence (pure).

The other rules (:mod:`sealbill.domain.guard`) compare the message with the database; a
database edited by hand can be self-consistent and wrong. This rule compares the rows read
fresh in the claiming transaction with their seals (``domain/seals.py``), which nobody without
the key can make. Rule name ``seal``; for each message:

1. the organization's row (sender, archive copy) matches its seal, and the SMTP sender is the
   sealed sender address;
2. for each envelope recipient (contact id, address): the contact row matches its seal and
   has that address; the contact's *billing* link to the envelope's account matches its seal,
   is ``verified``, and was verified for exactly that address; and the latest link event of
   the sealed contact history (``contact_events``) for that link matches its seal and hash and
   says ``verified`` for that address — the tables and the log agree;
3. every SMTP recipient is a recipient checked in 2, or the sealed archive address.

Fail closed: a missing row, a missing seal, a seal from a key the keyring does not hold and a
seal that does not match are all violations. A forged row is refused in an approved run too:
only a new verification through sealbill (which seals it) brings the address back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sealbill.domain.guard import Violation
from sealbill.domain.message_facts import normalize_address
from sealbill.domain.seals import Check, Keys, check_event, check_row

RULE = "seal"


@dataclass(frozen=True)
class RecipientRows:
    """What the database holds, now, for one envelope recipient (``None``: no such row)."""

    contact: Mapping[str, Any] | None
    link: Mapping[str, Any] | None  # the contact's billing link to the envelope's account
    last_event: Mapping[str, Any] | None  # the latest chained link event for that link


@dataclass(frozen=True)
class SealEvidence:
    organization: Mapping[str, Any] | None
    recipients: Mapping[int, RecipientRows]  # by contact id


def key_ids(evidence: SealEvidence) -> set[str]:
    """Every key id the evidence's rows were sealed with."""
    rows = [evidence.organization] + [row for r in evidence.recipients.values()
                                      for row in (r.contact, r.link, r.last_event)]
    return {str(row["seal_key_id"]) for row in rows
            if row is not None and row.get("seal_key_id")}


def _norm(address: object) -> str | None:
    return normalize_address(str(address)) if address else None


def verdict(keys: Keys, account_id: int, envelope: Sequence[tuple[int, str]],
            mail_from: str, rcpt_to: Sequence[str], evidence: SealEvidence
            ) -> list[Violation]:
    out: list[Violation] = []
    try:
        entitled = _organization(keys, mail_from, evidence.organization, out)
        for contact_id, email in envelope:
            rows = evidence.recipients.get(contact_id, RecipientRows(None, None, None))
            if _recipient(keys, account_id, contact_id, email, rows, out):
                entitled.add(_norm(email) or "")
        strangers = sorted({a for a in (_norm(r) or "" for r in rcpt_to) if a not in entitled})
        if strangers:
            out.append(Violation(RULE, "an SMTP recipient is not entitled by sealed evidence",
                                 {"addresses": strangers}))
    except Exception as exc:  # fail closed
        out.append(Violation(RULE, f"seal check error: {type(exc).__name__}",
                             {"error": str(exc)}))
    return out


def _organization(keys: Keys, mail_from: str, org: Mapping[str, Any] | None,
                  out: list[Violation]) -> set[str]:
    if org is None:
        out.append(Violation(RULE, "the organization's row is missing", {}))
        return set()
    check = organization_check(keys, org)
    if check is not Check.VALID:
        out.append(Violation(RULE, "the organization's sending identity does not match its "
                             "seal (sender or archive address changed outside sealbill)",
                             {"seal": check.value, "sender_email": org.get("sender_email"),
                              "archive_email": org.get("archive_email"),
                              "key_id": org.get("seal_key_id")}))
        return set()
    if _norm(mail_from) != _norm(org["sender_email"]):
        out.append(Violation(RULE, "the SMTP sender is not the sealed sender address",
                             {"mail_from": mail_from, "sealed": org["sender_email"]}))
    archive = _norm(org["archive_email"])
    return {archive} if archive else set()


def organization_check(keys: Keys, org: Mapping[str, Any]) -> Check:
    """``check_row(keys, "organization", org)``, remembered for the same keyring and the same
    row content: every message of a batch carries the organization's row (read fresh for the
    batch), and the check is a function of the keys and the row's values only, so a row that
    differs in any value, or another keyring, is checked afresh."""
    try:
        return _checked_organization(tuple(sorted(keys.by_id.items())),
                                     tuple(sorted(org.items())))
    except TypeError:  # a value that cannot be a cache key: checked without the cache
        return check_row(keys, "organization", org)


@lru_cache(maxsize=8)
def _checked_organization(keyring: tuple[tuple[str, bytes], ...],
                          row: tuple[tuple[str, Any], ...]) -> Check:
    return check_row(Keys(keyring[0][0], dict(keyring)), "organization", dict(row))


def _recipient(keys: Keys, account_id: int, contact_id: int, email: str, rows: RecipientRows,
               out: list[Violation]) -> bool:
    problems = recipient_problems(keys, account_id, email, rows)
    if problems:
        out.append(Violation(RULE, "recipient not entitled by sealed evidence",
                             {"contact_id": contact_id, "email": email,
                              "account_id": account_id, "problems": problems}))
    return not problems


def recipient_problems(keys: Keys, account_id: int, email: str, rows: RecipientRows
                       ) -> list[str]:
    """Why ``email`` is not entitled to ``account_id``'s invoices by sealed evidence (rule 2
    above); empty: the contact, its billing link and the link's latest event all verify."""
    problems: list[str] = []
    contact, link, event = rows.contact, rows.link, rows.last_event
    address = _norm(email)
    if contact is None:
        problems.append("no contact row")
    else:
        if (c := check_row(keys, "contact", contact)) is not Check.VALID:
            problems.append(f"contact row: seal {c.value}")
        if _norm(contact["email"]) != address:
            problems.append("the contact's address is not the envelope's")
    if link is None:
        problems.append("no billing link to this account")
    else:
        if (c := check_row(keys, "link", link)) is not Check.VALID:
            problems.append(f"link row: seal {c.value}")
        if link["status"] != "verified" or int(link["account_id"]) != account_id:
            problems.append(f"link is {link['status']}, not verified")
        if _norm(link["verified_email"]) != address:
            problems.append("the link was verified for another address")
    if event is None:
        problems.append("the contact history has no event for this link")
    else:
        if (c := check_event(keys, event)) is not Check.VALID:
            problems.append(f"latest history event: seal {c.value}")
        if event["event"] != "verified" or _norm(event["new_value"]) != address:
            problems.append(f"the history's latest event for this link is "
                            f"{event['event']!r} for {event['new_value']!r}, not a "
                            "verification of this address")
    return problems
