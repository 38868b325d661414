"""Delivery plans, their diff against the previous cycle, and the policy that may hold a run.

A plan is one envelope per invoice: the invoice, its account and the recipients resolved from
contact records. Before anything is sent, the plan is compared with the previous cycle's plan of
the same organization; a bad operational change (a migration that swapped contacts, a join that
slipped, a bulk "verification") shows up there as a *change*, before the first mail.

Invariants:
- :func:`evaluate` is a pure function of (plan, previous plan, link facts, policy, now): the
  same inputs always give the same verdict and report;
- the verdict is ``hold`` as soon as one finding is over its policy limit; ``proceed`` needs
  every finding within its limit;
- findings that need a previous cycle (new pairs, growth, changes) are computed only when there
  is one; on a first cycle they cannot be computed and :attr:`DeliveryPolicy.first_cycle`
  decides ("proceed" by default, "hold" for organizations that want a first-run approval).
  Absolute findings (fan-in above the maximum, links that the contact history does not explain,
  unsafe display names, recipients over the cap) apply on every cycle.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sealbill.domain import entitlement_changes as changes

PROCEED, HOLD = "proceed", "hold"
_SAMPLE = 20


@dataclass(frozen=True)
class PlannedEnvelope:
    invoice_id: int
    invoice_number: str
    account_id: int
    account_reference: str
    recipients: tuple[tuple[int, str], ...]  # (contact id, address), ordered by contact id
    amount_minor: int
    currency: str
    kind: str = "invoice"  # or "credit_note": a correction, not the cycle's amount


def per_account(envelopes: Sequence[PlannedEnvelope]) -> dict[int, PlannedEnvelope]:
    """One envelope per account, its invoice's when it has one: an account with an invoice
    and a credit note in a run is one account whose recipients changed or not, listed once;
    amounts are compared between invoices only."""
    out: dict[int, PlannedEnvelope] = {}
    for env in envelopes:
        if env.account_id not in out or out[env.account_id].kind != "invoice":
            out[env.account_id] = env
    return out


@dataclass(frozen=True)
class LinkFact:
    """What the database says about one (account, contact) pair of the plan."""

    account_id: int
    contact_id: int
    verified_at: datetime | None
    explained: bool  # the contact history (contact_events) accounts for this verified link
    explanation: str  # why not, when not explained
    name_safe: bool  # the display name has no control character


@dataclass(frozen=True)
class Threshold:
    """Over ``max(count, floor(share x envelopes))`` items, the finding holds the run."""

    count: int
    share: float = 0.0

    def limit(self, envelopes: int) -> int:
        return max(self.count, math.floor(self.share * envelopes))


@dataclass(frozen=True)
class DeliveryPolicy:
    first_cycle: str = PROCEED
    recipient_cap: int = 5
    max_fan_in: int = 100
    fan_in_growth: int = 3
    amount_ratio: float = 10.0
    recent_verification_hours: float = 24.0
    new_pairs_on_existing_accounts: Threshold = Threshold(5, 0.01)
    domain_changes: Threshold = Threshold(2, 0.005)
    more_recipients: Threshold = Threshold(5, 0.01)
    accounts_appearing: Threshold = Threshold(20, 0.10)
    accounts_disappearing: Threshold = Threshold(20, 0.10)
    amounts_far: Threshold = Threshold(10, 0.02)
    recently_verified: Threshold = Threshold(20, 0.05)
    fan_in_grown: Threshold = Threshold(0)
    fan_in_over_max: Threshold = Threshold(0)
    fan_in_unexplained: Threshold = Threshold(0)  # addresses, by count
    archive_changed: Threshold = Threshold(0)
    unexplained_links: Threshold = Threshold(0)
    unsafe_names: Threshold = Threshold(0)
    over_cap: Threshold = Threshold(0)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> DeliveryPolicy:
        """Override defaults from JSON-like values; an unknown key is an error, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown delivery policy settings: {sorted(unknown)}")
        policy = cls()
        changes: dict[str, Any] = {}
        for key, value in values.items():
            current = getattr(policy, key)
            if isinstance(current, Threshold):
                changes[key] = Threshold(**value) if isinstance(value, Mapping) else Threshold(
                    int(value))
            else:
                changes[key] = type(current)(value)
        if changes.get("first_cycle", PROCEED) not in (PROCEED, HOLD):
            raise ValueError("first_cycle must be 'proceed' or 'hold'")
        return replace(policy, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    kind: str
    description: str
    count: int
    limit: int | None  # None: informational, never holds
    items: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def holds(self) -> bool:
        return self.limit is not None and self.count > self.limit


@dataclass(frozen=True)
class Evaluation:
    verdict: str
    findings: tuple[Finding, ...]
    first_cycle: bool

    def report(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "first_cycle": self.first_cycle,
            "findings": [
                {"kind": f.kind, "description": f.description, "count": f.count,
                 "limit": f.limit, "holds": f.holds, "items": list(f.items),
                 "why_it_matters": changes.GUIDANCE.get(f.kind, ("", ""))[0] or None,
                 "what_to_do": changes.GUIDANCE.get(f.kind, ("", ""))[1] or None}
                for f in self.findings
            ],
            "lines": self.lines(),
        }

    def lines(self) -> list[str]:
        head = f"verdict: {self.verdict.upper()}" + (" (first cycle)" if self.first_cycle else "")
        out = [head]
        for f in self.findings:
            if f.kind == "archive":  # a fact to show, not a count
                out.append(f"[info] {f.description}")
                continue
            mark = "HOLD" if f.holds else ("info" if f.limit is None else "ok")
            limit = "" if f.limit is None else f" (limit {f.limit})"
            out.append(f"[{mark}] {f.description}: {f.count}{limit}")
            out += changes.detail_lines(f.kind, f.items)
        return out


def _domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def fan_in(envelopes: Iterable[PlannedEnvelope]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = defaultdict(set)
    for env in envelopes:
        for _, email in env.recipients:
            out[email.lower()].add(env.account_id)
    return out


Counted = tuple[int, tuple[Mapping[str, Any], ...]]  # (how many, the first 20 in plan order)


def counted(items: Sequence[Mapping[str, Any]]) -> Counted:
    return len(items), tuple(items[:_SAMPLE])


def evaluate(plan: Sequence[PlannedEnvelope], previous: Sequence[PlannedEnvelope] | None,
             links: Sequence[LinkFact], policy: DeliveryPolicy, now: datetime, *,
             archive: str | None = None, previous_archive: str | None = None,
             evidence: changes.Evidence | None = None) -> Evaluation:
    """``archive``: the archive copy of this plan and of the previous one; ``evidence``: the
    contact history of each changed (account, contact) pair (:func:`changes.changed_pairs`).
    Every recipient change is listed (never sampled); thresholds only decide the verdict.
    :mod:`sealbill.domain.plan_tally` gives the same, a group of accounts at a time."""
    n = len(plan)
    first = previous is None
    findings = _absolute(plan, links, policy, now, first=first)
    findings.append(unexplained_finding(changes.fan_in_unexplained(plan, links), policy))
    if previous is not None:
        findings.append(changes_finding(changes.recipient_changes(plan, previous,
                                                                  evidence or {})))
        findings.append(archive_finding(archive, previous_archive, policy))
        findings += _diff(plan, previous, policy)
    return assemble(findings, n, archive, policy, first=first)


def unexplained_finding(unexplained: Sequence[Mapping[str, Any]],
                        policy: DeliveryPolicy) -> Finding:
    return Finding("fan_in_unexplained", "addresses receiving for accounts their "
                   "verified links do not explain", len(unexplained),
                   policy.fan_in_unexplained.limit(0), tuple(unexplained))


def changes_finding(listed: Sequence[Mapping[str, Any]]) -> Finding:
    return Finding("recipient_changes", "accounts whose recipients changed since "
                   "the previous cycle (every one listed)", len(listed), None, tuple(listed))


def archive_finding(archive: str | None, previous_archive: str | None,
                    policy: DeliveryPolicy) -> Finding:
    moved = changes.archive_change(archive, previous_archive)
    return Finding("archive_changed", "archive copy changed since the previous cycle",
                   int(moved is not None), policy.archive_changed.limit(0),
                   (moved,) if moved else ())


def assemble(findings: list[Finding], n: int, archive: str | None, policy: DeliveryPolicy,
             *, first: bool) -> Evaluation:
    """The verdict over the findings, and the facts shown first (envelopes, archive)."""
    holds = any(f.holds for f in findings) or (first and policy.first_cycle == HOLD)
    if first and policy.first_cycle == HOLD:
        findings.insert(0, Finding("first_cycle", "first cycle: no previous plan to compare",
                                   1, 0))
    findings.insert(0, Finding("envelopes", "envelopes in this plan", n, None))
    findings.insert(1, Finding("archive", f"archive copy on every message: {archive or 'none'}",
                               int(archive is not None), None,
                               ({"archive": archive},) if archive else ()))
    return Evaluation(HOLD if holds else PROCEED, tuple(findings), first)


def no_recipient_item(env: PlannedEnvelope) -> dict[str, Any] | None:
    return None if env.recipients else {"account": env.account_reference,
                                        "invoice": env.invoice_number}


def over_cap_item(env: PlannedEnvelope, policy: DeliveryPolicy) -> dict[str, Any] | None:
    return ({"account": env.account_reference, "recipients": len(env.recipients)}
            if len(env.recipients) > policy.recipient_cap else None)


def link_items(lf: LinkFact, window: datetime) -> tuple[dict[str, Any] | None, ...]:
    """The link's item, if any, in each of: unexplained, unsafe name, recently verified."""
    return (
        None if lf.explained else {"account_id": lf.account_id, "contact_id": lf.contact_id,
                                   "why": lf.explanation},
        None if lf.name_safe else {"account_id": lf.account_id, "contact_id": lf.contact_id},
        {"account_id": lf.account_id, "contact_id": lf.contact_id,
         "verified_at": lf.verified_at.isoformat()}
        if lf.verified_at is not None and lf.verified_at >= window else None)


def fan_in_over(fan: Mapping[str, set[int]], policy: DeliveryPolicy) -> list[dict[str, Any]]:
    return [{"email": a, "accounts": len(s)}
            for a, s in sorted(fan.items(), key=lambda kv: -len(kv[1]))
            if len(s) > policy.max_fan_in]


def absolute_findings(n: int, policy: DeliveryPolicy, *, first: bool, no_rcpt: Counted,
                      over: Counted, big: Counted, unexplained: Counted, unsafe: Counted,
                      recent: Counted) -> list[Finding]:
    return [
        Finding("no_recipient", "invoices without a verified billing contact (held)",
                no_rcpt[0], None, no_rcpt[1]),
        Finding("over_cap", f"envelopes over the cap of {policy.recipient_cap}",
                over[0], policy.over_cap.limit(n), over[1]),
        Finding("fan_in_over_max", f"addresses receiving for more than "
                f"{policy.max_fan_in} accounts", big[0],
                policy.fan_in_over_max.limit(n), big[1]),
        Finding("unexplained_links", "verified links the contact history does not "
                "explain (changed outside sealbill?)", unexplained[0],
                policy.unexplained_links.limit(n), unexplained[1]),
        Finding("unsafe_names", "contact names with control characters",
                unsafe[0], policy.unsafe_names.limit(n), unsafe[1]),
        Finding("recently_verified", f"recipients verified in the last "
                f"{policy.recent_verification_hours:g} h", recent[0],
                None if first else policy.recently_verified.limit(n), recent[1]),
    ]


def _absolute(plan: Sequence[PlannedEnvelope], links: Sequence[LinkFact],
              policy: DeliveryPolicy, now: datetime, *, first: bool) -> list[Finding]:
    window = now - timedelta(hours=policy.recent_verification_hours)
    per_link = [link_items(lf, window) for lf in links]
    return absolute_findings(
        len(plan), policy, first=first,
        no_rcpt=counted([i for e in plan if (i := no_recipient_item(e)) is not None]),
        over=counted([i for e in plan if (i := over_cap_item(e, policy)) is not None]),
        big=counted(fan_in_over(fan_in(plan), policy)),
        unexplained=counted([t[0] for t in per_link if t[0] is not None]),
        unsafe=counted([t[1] for t in per_link if t[1] is not None]),
        recent=counted([t[2] for t in per_link if t[2] is not None]))


@dataclass
class AccountDiff:
    """One account's differences with the previous cycle (each None when there is none)."""

    new_pair: dict[str, Any] | None
    domain: dict[str, Any] | None
    more: dict[str, Any] | None
    far: dict[str, Any] | None


def account_diff(env: PlannedEnvelope, before: PlannedEnvelope,
                 policy: DeliveryPolicy) -> AccountDiff:
    """The account's envelope now and before, as :func:`per_account` picks them."""
    old = {email.lower() for _, email in before.recipients}
    added = [email for _, email in env.recipients if email.lower() not in old]
    old_domains = {_domain(e) for e in old}
    new_domains = {_domain(email) for _, email in env.recipients}
    return AccountDiff(
        {"account": env.account_reference, "added": added} if added else None,
        {"account": env.account_reference, "before": sorted(old_domains),
         "now": sorted(new_domains)} if old_domains and new_domains - old_domains else None,
        {"account": env.account_reference, "before": len(before.recipients),
         "now": len(env.recipients)} if len(env.recipients) > len(before.recipients) else None,
        {"account": env.account_reference, "before": before.amount_minor,
         "now": env.amount_minor, "currency": env.currency}
        if env.kind == before.kind == "invoice" and _far(env, before, policy.amount_ratio)
        else None)


def fan_in_grown(fan_now: Mapping[str, set[int]], fan_before: Mapping[str, set[int]],
                 policy: DeliveryPolicy) -> list[dict[str, Any]]:
    growth = sorted(((a, len(fan_before.get(a, ())), len(s)) for a, s in fan_now.items()
                     if len(s) - len(fan_before.get(a, ())) > policy.fan_in_growth),
                    key=lambda t: -t[2])
    return [{"email": a, "before": before, "now": now} for a, before, now in growth]


def diff_findings(n: int, policy: DeliveryPolicy, *, new_pairs: Counted, grown: Counted,
                  domains: Counted, more: Counted, appearing: Counted, disappearing: Counted,
                  far: Counted) -> list[Finding]:
    return [
        Finding("new_pairs", "existing accounts with a new recipient", new_pairs[0],
                policy.new_pairs_on_existing_accounts.limit(n), new_pairs[1]),
        Finding("fan_in_grown", f"addresses receiving for more than {policy.fan_in_growth} "
                "more accounts than last cycle", grown[0], policy.fan_in_grown.limit(n),
                grown[1]),
        Finding("domain_changes", "accounts whose recipient domain changed", domains[0],
                policy.domain_changes.limit(n), domains[1]),
        Finding("more_recipients", "envelopes with more recipients than last cycle",
                more[0], policy.more_recipients.limit(n), more[1]),
        Finding("accounts_appearing", "accounts not in the previous plan", appearing[0],
                policy.accounts_appearing.limit(n), appearing[1]),
        Finding("accounts_disappearing", "accounts of the previous plan missing now",
                disappearing[0], policy.accounts_disappearing.limit(n), disappearing[1]),
        Finding("amounts_far", f"amounts more than {policy.amount_ratio:g}x away from last "
                "cycle", far[0], policy.amounts_far.limit(n), far[1]),
    ]


def _diff(plan: Sequence[PlannedEnvelope], previous: Sequence[PlannedEnvelope],
          policy: DeliveryPolicy) -> list[Finding]:
    prev_by_account = per_account(previous)
    cur_by_account = per_account(plan)
    diffs = [account_diff(env, prev_by_account[env.account_id], policy)
             for env in cur_by_account.values() if env.account_id in prev_by_account]
    appearing = [{"account": e.account_reference} for e in cur_by_account.values()
                 if e.account_id not in prev_by_account]
    disappearing = [{"account": e.account_reference} for e in prev_by_account.values()
                    if e.account_id not in cur_by_account]
    return diff_findings(
        len(plan), policy,
        new_pairs=counted([d.new_pair for d in diffs if d.new_pair is not None]),
        grown=counted(fan_in_grown(fan_in(plan), fan_in(previous), policy)),
        domains=counted([d.domain for d in diffs if d.domain is not None]),
        more=counted([d.more for d in diffs if d.more is not None]),
        appearing=counted(appearing), disappearing=counted(disappearing),
        far=counted([d.far for d in diffs if d.far is not None]))


def _far(now: PlannedEnvelope, before: PlannedEnvelope, ratio: float) -> bool:
    if now.currency != before.currency:
        return True
    a, b = abs(now.amount_minor), abs(before.amount_minor)
    if a == b:
        return False
    if min(a, b) == 0:
        # From nothing to something (or back) is "far" only above a trivial amount.
        return max(a, b) >= 100 * ratio
    return max(a, b) / min(a, b) > ratio
