"""Who is acting: an :class:`Actor` (an authenticated operator's key, or a local user) and
what each role may do.

Invariants: an actor with an ``org_id`` acts on that organization only (every use case looks
objects up within ``actor``'s organization, so another organization's objects are "not found");
a local actor (someone with direct access to the database, through the CLI without a key) is
an administrator of every organization, and is recorded as ``local:<user>``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from sealbill.app.errors import Forbidden

ROLES = ("admin", "billing", "approver", "auditor", "read-only")

READ = "read"
AUDIT_READ = "audit.read"
ORG_WRITE = "org.write"
CATALOG_WRITE = "catalog.write"
ACCOUNTS_WRITE = "accounts.write"
USAGE_WRITE = "usage.write"
RUNS_WRITE = "runs.write"
RUNS_APPROVE = "runs.approve"

_ALL = frozenset({READ, AUDIT_READ, ORG_WRITE, CATALOG_WRITE, ACCOUNTS_WRITE, USAGE_WRITE,
                  RUNS_WRITE, RUNS_APPROVE})
CAPABILITIES: dict[str, frozenset[str]] = {
    "admin": _ALL,
    "billing": frozenset({READ, CATALOG_WRITE, ACCOUNTS_WRITE, USAGE_WRITE, RUNS_WRITE}),
    "approver": frozenset({READ, RUNS_APPROVE}),
    "auditor": frozenset({READ, AUDIT_READ}),
    "read-only": frozenset({READ}),
}


@dataclass(frozen=True)
class Actor:
    """``name`` is what the records keep: ``operator:<email>`` or ``local:<user>``."""

    name: str
    role: str
    org_id: int | None = None  # None: a local actor, any organization
    operator_id: int | None = None
    key_prefix: str | None = None
    channel: str = "cli"

    @property
    def authenticated(self) -> bool:
        return self.operator_id is not None

    def can(self, capability: str) -> bool:
        return capability in CAPABILITIES.get(self.role, frozenset())

    def require(self, capability: str) -> None:
        if not self.can(capability):
            raise Forbidden(f"role {self.role!r} may not do this ({capability})")

    def require_org(self, org_id: int) -> None:
        """An actor scoped to another organization sees nothing of this one."""
        if self.org_id is not None and self.org_id != org_id:
            from sealbill.app.errors import NotFound

            raise NotFound("organization not found")


def local_actor(channel: str = "cli") -> Actor:
    """The person at a terminal with the database in hand, without an API key."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(name=f"local:{user}", role="admin", channel=channel)
