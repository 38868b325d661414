"""Every change of entitlement, listed whatever its size, and how to read it (pure).

The delivery plan's diff (:mod:`sealbill.domain.delivery_plan`) decides *hold or proceed* with
thresholds; this module decides nothing about visibility: each account whose recipients differ
from the previous cycle is listed, with the evidence behind the change (the contact history:
who changed what, when, verified how), and so is a changed archive copy.

Invariants:
- :func:`recipient_changes` lists every account present in both cycles whose set of recipient
  addresses differs (case-insensitively), never a sample;
- :func:`fan_in_unexplained` counts addresses, not a share of the plan: one address receiving
  for one account that its verified, history-explained links do not account for is one item,
  as visible (and as holding) as one receiving for a hundred;
- :data:`GUIDANCE` says, for each finding kind, why it matters and what to do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

Evidence = Mapping[tuple[int, int], Sequence[Mapping[str, Any]]]


class _Envelope(Protocol):
    @property
    def account_id(self) -> int: ...
    @property
    def account_reference(self) -> str: ...
    @property
    def invoice_number(self) -> str: ...
    @property
    def recipients(self) -> tuple[tuple[int, str], ...]: ...


class _Link(Protocol):
    @property
    def account_id(self) -> int: ...
    @property
    def contact_id(self) -> int: ...
    @property
    def explained(self) -> bool: ...
    @property
    def explanation(self) -> str: ...


GUIDANCE: dict[str, tuple[str, str]] = {
    "recipient_changes": (
        "each line is a person who will receive (or stop receiving) a customer's invoices",
        "check each change against its evidence; a change nobody made through sealbill is a "
        "data problem: fix the contact, do not approve"),
    "archive_changed": (
        "the archive copy goes with every message of the run: a wrong archive address "
        "receives every customer's invoice",
        "confirm the new archive address with its owner before approving"),
    "fan_in_unexplained": (
        "an address receiving for accounts its verified links do not explain is how invoices "
        "leak to an outsider, whether for one account or a hundred",
        "verify that address for each account (sealbill contacts verify) or remove the link, "
        "then `sealbill run plan RUN --replan`"),
    "unexplained_links": (
        "the table says verified but the contact history does not: a change made outside "
        "sealbill (migration, admin query, import)",
        "find who changed the rows; re-verify the contacts through sealbill, then replan"),
    "new_pairs": ("new people receive existing customers' invoices",
                  "check each new recipient's verification evidence"),
    "fan_in_grown": ("one address now receives for many more accounts",
                     "confirm it is a mandated accountant; otherwise remove the links"),
    "domain_changes": ("invoices go to another company's mail domain",
                       "confirm the customer changed provider"),
    "no_recipient": ("these invoices will not be delivered",
                     "verify a billing contact for each account, then replan"),
}


def _addresses(env: _Envelope) -> set[str]:
    return {email.lower() for _, email in env.recipients}


def changed_pairs(plan: Iterable[_Envelope], previous: Iterable[_Envelope]
                  ) -> set[tuple[int, int]]:
    """(account id, contact id) of every recipient added to or removed from an account."""
    before = {e.account_id: e for e in previous}
    out: set[tuple[int, int]] = set()
    for env in plan:
        old = before.get(env.account_id)
        if old is None or _addresses(old) == _addresses(env):
            continue
        out |= {(env.account_id, cid) for cid, _ in (*env.recipients, *old.recipients)}
    return out


def recipient_changes(plan: Sequence[_Envelope], previous: Sequence[_Envelope],
                      evidence: Evidence) -> list[dict[str, Any]]:
    """Every account whose recipients differ from the previous cycle: before -> after, what
    was added and removed, and the contact history behind each affected contact."""
    before = {e.account_id: e for e in previous}
    out = []
    for env in plan:
        old = before.get(env.account_id)
        if old is None:
            continue
        was, now = _addresses(old), _addresses(env)
        if was == now:
            continue
        contacts = sorted({cid for cid, _ in (*env.recipients, *old.recipients)})
        out.append({
            "account": env.account_reference, "invoice": env.invoice_number,
            "before": sorted(was), "after": sorted(now),
            "added": sorted(now - was), "removed": sorted(was - now),
            "evidence": [dict(item) for cid in contacts
                         for item in evidence.get((env.account_id, cid), ())],
        })
    return out


def fan_in_unexplained(plan: Sequence[_Envelope], links: Sequence[_Link]
                       ) -> list[dict[str, Any]]:
    """Addresses receiving for more accounts than their explained, verified links account
    for — counted per address, whatever the size of the plan."""
    explained = {(lf.account_id, lf.contact_id): lf for lf in links}
    receiving: dict[str, set[str]] = defaultdict(set)
    unexplained: dict[str, list[dict[str, str]]] = defaultdict(list)
    for env in plan:
        for cid, email in env.recipients:
            receiving[email.lower()].add(env.account_reference)
            fact = explained.get((env.account_id, cid))
            if fact is not None and not fact.explained:
                unexplained[email.lower()].append({"account": env.account_reference,
                                                   "why": fact.explanation})
    return [{"email": email, "receives_for": len(receiving[email]),
             "explained": len(receiving[email]) - len(items), "unexplained": items}
            for email, items in sorted(unexplained.items())]


def archive_change(archive: str | None, previous_archive: str | None) -> dict[str, Any] | None:
    a = archive.lower() if archive else None
    b = previous_archive.lower() if previous_archive else None
    return None if a == b else {"before": b, "after": a}


def _evidence_text(items: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for ev in items[-3:]:
        how = f" via {ev['method']}" if ev.get("method") else ""
        what = ev.get("new_value") or ev.get("reason") or ""
        parts.append(f"{ev.get('event')} by {ev.get('actor')}{how} at {ev.get('at')}"
                     + (f" ({what})" if what else ""))
    return "; ".join(parts) or "no contact history for this change"


def detail_lines(kind: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The per-item lines a person reads under a finding (every item for the change lists)."""
    out = []
    if kind == "recipient_changes":
        for item in items:
            out.append(f"    {item['account']} ({item['invoice']}): "
                       f"{', '.join(item['before']) or '-'} -> {', '.join(item['after']) or '-'}")
            out.append(f"      evidence: {_evidence_text(item['evidence'])}")
    elif kind == "archive_changed":
        for item in items:
            out.append(f"    archive copy: {item['before'] or '-'} -> {item['after'] or '-'}")
    elif kind == "fan_in_unexplained":
        for item in items:
            accounts = ", ".join(u["account"] for u in item["unexplained"])
            out.append(f"    {item['email']}: receives for {item['receives_for']} account(s), "
                       f"{item['explained']} explained; not explained: {accounts}")
    if out and kind in GUIDANCE:
        why, todo = GUIDANCE[kind]
        out += [f"      why it matters: {why}", f"      what to do: {todo}"]
    return out
