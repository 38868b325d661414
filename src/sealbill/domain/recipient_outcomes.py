"""Each recipient's outcome for one message, across its attempts (pure, standard library).

A message has several SMTP recipients (its verified billing contacts and the archive copy). The
server answers each ``RCPT TO`` on its own, so a message can be delivered to some and refused
for others. sealbill records the outcome **per recipient** (``outbox.recipient_outcomes``,
keyed by the normalized address) and merges each attempt into it with :func:`merge`:

- ``delivered`` — the server took the message for this recipient (``DATA`` answered 250);
- ``bounced`` — the server refused this recipient permanently (5xx on ``RCPT``, naming it);
- ``deferred`` — refused for now (4xx on ``RCPT``), or the message as a whole failed
  temporarily (4xx to ``DATA``, a drop, a timeout): try again;
- ``refused`` — the server refused the message itself permanently (5xx to ``DATA``): not the
  address's fault (no contact is flagged), not retried unless an operator re-queues it.

Invariants:
- ``delivered`` and ``bounced`` are final for a message: :func:`pending` never lists them, so
  a later attempt (a retry, a resend after a crash) goes only to the other recipients, with the
  same bytes and Message-ID — nothing is sent twice to anyone the server already took it for;
- the message's status follows from the outcomes alone (:func:`status`): ``failed_temporary``
  while a recipient is pending, else ``sent`` if someone got it, else ``failed_permanent``;
- an attempt only changes the outcomes of the recipients it was sent to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DELIVERED, BOUNCED, DEFERRED, REFUSED = "delivered", "bounced", "deferred", "refused"
SETTLED = frozenset({DELIVERED, BOUNCED})
Outcomes = Mapping[str, Mapping[str, Any]]  # address (normalized) -> {"state", "code", "reply"}


def key(address: str) -> str:
    """How an address is keyed: case-folded, surrounding space removed."""
    return address.strip().lower()


@dataclass(frozen=True)
class Attempt:
    """What the server said about one attempt, in plain terms.

    ``outcome`` is ``sent`` (DATA 250 for ``accepted``), ``temporary`` or ``permanent`` (no
    one took it); ``accepted``: the recipients taken at ``RCPT`` (the DATA outcome applies to
    them); ``refused``: per recipient, the ``RCPT`` refusal (code, reply)."""

    outcome: str
    rcpt_to: tuple[str, ...]
    accepted: tuple[str, ...]
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    code: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class Merged:
    outcomes: dict[str, dict[str, Any]]
    delivered_now: tuple[str, ...]  # addresses as given in rcpt_to
    bounced_now: tuple[str, ...]


def pending(rcpt_to: Iterable[str], outcomes: Outcomes) -> tuple[str, ...]:
    """The recipients still to send to: neither delivered nor bounced (order kept)."""
    return tuple(r for r in rcpt_to
                 if (outcomes.get(key(r)) or {}).get("state") not in SETTLED)


def merge(previous: Outcomes, attempt: Attempt, at: str) -> Merged:
    """``previous`` with this attempt's answers written in (see the module)."""
    out = {k: dict(v) for k, v in previous.items()}
    refused = {key(a): v for a, v in attempt.refused.items()}
    accepted = {key(a) for a in attempt.accepted}
    delivered_now: list[str] = []
    bounced_now: list[str] = []
    for address in attempt.rcpt_to:
        k = key(address)
        if (out.get(k) or {}).get("state") in SETTLED:
            continue  # never downgraded (the caller should not have sent to it)
        code: int | None
        stage = "rcpt"
        if k in refused:
            code, reply = refused[k]
            state = BOUNCED if code >= 500 else DEFERRED
            if state == BOUNCED:
                bounced_now.append(address)
        elif k in accepted:
            state = {"sent": DELIVERED, "temporary": DEFERRED}.get(attempt.outcome, REFUSED)
            code, reply, stage = attempt.code, attempt.detail, "data"
            if state == DELIVERED:
                delivered_now.append(address)
        else:  # not answered individually (a session that broke before RCPT): try again
            state, code, reply, stage = DEFERRED, attempt.code, attempt.detail, "data"
        out[k] = {"state": state, "code": code, "reply": reply[:300], "at": at, "stage": stage}
    return Merged(out, tuple(delivered_now), tuple(bounced_now))


def status(rcpt_to: Sequence[str], outcomes: Outcomes,
           counted: Iterable[str] | None = None) -> str:
    """The message's outbox status, from its recipients' outcomes: ``failed_temporary`` while
    one is pending; else ``sent`` when one of ``counted`` (the customer's recipients; all by
    default — the archive copy alone does not make an invoice delivered) got it; else
    ``failed_permanent`` (no customer received it: a re-plan may rebuild it)."""
    states = [(outcomes.get(key(r)) or {}).get("state") for r in rcpt_to]
    if any(s not in (DELIVERED, BOUNCED, REFUSED) for s in states):
        return "failed_temporary"
    wanted = {key(r) for r in (rcpt_to if counted is None else counted)}
    delivered = any((outcomes.get(k) or {}).get("state") == DELIVERED for k in wanted)
    return "sent" if delivered else "failed_permanent"


def message_level(outcomes: Outcomes) -> bool:
    """Did the server fail the message itself (DATA refused or deferred: the same would happen
    to every message), rather than refuse an address?"""
    return any(v.get("stage") == "data" and v.get("state") in (DEFERRED, REFUSED)
               for v in outcomes.values())


def reopen(outcomes: Outcomes) -> dict[str, dict[str, Any]]:
    """For an operator's re-queue: ``deferred`` and ``refused`` recipients are tried again;
    ``delivered`` and ``bounced`` stay as they are."""
    return {k: dict(v) for k, v in outcomes.items() if v.get("state") in SETTLED}
