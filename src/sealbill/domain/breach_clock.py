"""The Art. 33(1) clock: 72 hours from the moment of awareness to the notification.

Invariants:
- every instant is timezone-aware; a naive one raises ``ValueError`` (never guessed as UTC);
- the deadline is ``aware_at + 72 h`` exactly; ``remaining`` is negative once it has passed;
- a notification is late when it was (or, not yet made, would now be) after the deadline; a
  late notification needs a recorded reason for the delay, and ``needs_delay_reason`` stays
  true until one is given;
- pure: the current instant is an argument, never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

NOTIFICATION_WINDOW = timedelta(hours=72)


def require_aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: a time zone is required (ISO 8601 with offset), got {value}")
    return value


@dataclass(frozen=True)
class ClockReading:
    aware_at: datetime
    deadline: datetime
    now: datetime
    remaining: timedelta
    notified_at: datetime | None
    late: bool
    needs_delay_reason: bool

    @property
    def overdue(self) -> bool:
        """Past the deadline without a notification."""
        return self.notified_at is None and self.remaining < timedelta(0)


def read_clock(aware_at: datetime, now: datetime, *, notified_at: datetime | None = None,
               delay_reason: str | None = None) -> ClockReading:
    """Where the incident stands against the 72-hour deadline.

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 5, 14, 11, 35, tzinfo=UTC)
    >>> r = read_clock(t0, t0 + timedelta(hours=80))
    >>> r.overdue, r.needs_delay_reason, format_duration(r.remaining)
    (True, True, '-8 h 00 min')
    """
    require_aware(aware_at, "aware_at")
    require_aware(now, "now")
    if notified_at is not None:
        require_aware(notified_at, "notified_at")
    deadline = aware_at + NOTIFICATION_WINDOW
    reference = notified_at or now
    late = reference > deadline
    return ClockReading(
        aware_at=aware_at, deadline=deadline, now=now, remaining=deadline - now,
        notified_at=notified_at, late=late,
        needs_delay_reason=late and not (delay_reason or "").strip(),
    )


def format_duration(delta: timedelta) -> str:
    """``2 d 03 h 12 min``; negative durations (past the deadline) carry a minus sign.

    >>> format_duration(timedelta(hours=50, minutes=5))
    '2 d 02 h 05 min'
    >>> format_duration(timedelta(minutes=-90))
    '-1 h 30 min'
    """
    sign = "-" if delta < timedelta(0) else ""
    minutes = int(abs(delta).total_seconds()) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{sign}{days} d {hours:02d} h {minutes:02d} min"
    return f"{sign}{hours} h {minutes:02d} min"
