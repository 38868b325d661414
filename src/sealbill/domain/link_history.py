"""Contact records as they were at any past instant, rebuilt from the append-only history.

Invariants:
- a (contact, account, role) link's state at instant t is given by its last event at or before
  t (events at exactly t are in effect; ``seq`` orders events of the same instant): ``linked``
  and ``pending`` mean pending, ``verified`` verified, ``revoked`` revoked; before its first
  event the link does not exist;
- a contact's address at t is the value of its last ``added`` / ``address_changed`` event at or
  before t;
- addresses compare with the domain case-folded and the local part as is;
- pure: built from event values only, never from the current state of the tables.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

_LINK_STATE_BY_EVENT = {"linked": "pending", "pending": "pending", "verified": "verified",
                        "revoked": "revoked"}


@dataclass(frozen=True)
class LinkEvent:
    """A link event from ``contact_events`` (``seq`` orders events recorded at the same instant)."""

    seq: int
    contact_id: int
    account_id: int
    role: str
    event: str
    at: datetime


@dataclass(frozen=True)
class AddressEvent:
    """A contact's address from that instant on (``added`` or ``address_changed``)."""

    seq: int
    contact_id: int
    email: str
    at: datetime


def normalize_address(email: str) -> str:
    """Compare addresses as mail does: the domain is case-insensitive, the local part is not.

    >>> normalize_address(" Ann@Example.COM ")
    'Ann@example.com'
    """
    local, _, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


class LinkHistory:
    """The contact records as they were at any past instant, rebuilt from their events."""

    def __init__(self, links: Iterable[LinkEvent], addresses: Iterable[AddressEvent]) -> None:
        self._links: dict[tuple[int, int, str], list[tuple[datetime, int, str]]] = (
            defaultdict(list))
        self._roles: dict[tuple[int, int], list[tuple[datetime, int, str]]] = defaultdict(list)
        for event in links:
            state = _LINK_STATE_BY_EVENT.get(event.event)
            if state is None:
                continue  # contact-level events (bounced...) do not change entitlement
            self._links[(event.contact_id, event.account_id, event.role)].append(
                (event.at, event.seq, state))
            self._roles[(event.contact_id, event.account_id)].append(
                (event.at, event.seq, event.role))
        self._addresses: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
        for address in addresses:
            self._addresses[address.contact_id].append(
                (address.at, address.seq, normalize_address(address.email)))
        for series in (*self._links.values(), *self._roles.values(), *self._addresses.values()):
            series.sort()

    def link_state(self, contact_id: int, account_id: int, role: str,
                   at: datetime) -> str | None:
        """``pending`` / ``verified`` / ``revoked`` at ``at``, or None if not yet linked."""
        return _last_at(self._links.get((contact_id, account_id, role), []), at)

    def linked_in_another_role(self, contact_id: int, account_id: int, at: datetime) -> bool:
        series = self._roles.get((contact_id, account_id), [])
        return any(moment <= at and role != "billing" for moment, _seq, role in series)

    def address(self, contact_id: int, at: datetime) -> str | None:
        return _last_at(self._addresses.get(contact_id, []), at)

    def contacts_at_address(self, email: str, at: datetime) -> list[int]:
        wanted = normalize_address(email)
        return sorted(cid for cid in self._addresses if self.address(cid, at) == wanted)


def _last_at(series: list[tuple[datetime, int, str]], at: datetime) -> str | None:
    # Events recorded at exactly ``at`` are in effect: a link verified in the same instant as
    # the send was verified when the send happened.
    index = bisect_right([moment for moment, _seq, _value in series], at)
    return series[index - 1][2] if index else None
