"""The times an operator states about an incident must be possible.

- no time is in the future (a clock skew of :data:`SKEW` is tolerated);
- what the controller did (notification, deletion requests, warnings) happens at or after
  the moment it became aware; the breach itself may start before that, but ends after it
  starts;
- a closed incident takes no more statements: it stays in the register as it was closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

SKEW = timedelta(minutes=5)
ACTION_TIMES = ("deletion_requested_at", "customers_warned_at", "notified_at")


def not_future(moment: datetime, name: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    if moment > now + SKEW:
        raise ValueError(f"{name}: {moment.isoformat()} is in the future (now "
                         f"{now.isoformat(timespec='seconds')})")
    return moment


def require_open(incident: Mapping[str, Any]) -> None:
    if incident.get("status") == "closed":
        raise ValueError(f"incident {incident['id']} is closed: it takes no more changes "
                         "(open a new incident for what was found since)")


def check_update_times(incident: Mapping[str, Any], facts: Mapping[str, Any],
                       actions: Mapping[str, datetime | None]) -> None:
    """Refuse impossible times in an update (``facts``: ISO texts, ``actions``: instants)."""
    aware = _instant(incident["aware_at"])
    for name, moment in actions.items():
        if moment is None:
            continue
        not_future(moment, f"--{name.replace('_', '-')}")
        if moment < aware:
            raise ValueError(f"--{name.replace('_', '-')}: {moment.isoformat()} is before the "
                             f"controller became aware of the incident ({aware.isoformat()})")
    start, end = (_instant(facts[k]) if facts.get(k) else None
                  for k in ("breach_start", "breach_end"))
    for name, moment in (("--breach-start", start), ("--breach-end", end)):
        if moment is not None:
            not_future(moment, name)
    if start and end and end < start:
        raise ValueError(f"--breach-end: {end.isoformat()} is before the breach's start "
                         f"({start.isoformat()})")


def _instant(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
