"""May this address receive an invoice? Reserved, own and placeholder addresses (pure).

One answer for every place an address enters or leaves sealbill: the store when a contact is
added, changed, linked or verified, the accounts import, the verification mail, the delivery
plan and the send-time guard (which asks again even when a row says the contact is verified).

Refused, whatever the configuration (never on the allow-list):
- a domain that is an IP literal (``[192.0.2.1]``, ``[IPv6:...]``) or parses as an IP address;
- a single-label domain (``localhost``, ``intranet``): no public mail domain has one label;
- the special-use names of RFC 2606 / RFC 6761 that no mail should ever go to:
  ``*.invalid``, ``*.localhost``, ``*.local`` (mDNS), ``*.onion``, ``*.internal``,
  ``*.home.arpa``, and ``example`` as any label but the last (``example.com``, ``example.net``,
  ``example.org``, ``mail.example.fr``...);
- a placeholder local part (:data:`DEFAULT_PLACEHOLDERS`, plus the organization's own list):
  ``noreply@``, ``test@``, ``invalid@``... compared without a ``+tag`` and case-insensitively.

Refused unless the domain is on the organization's explicit allow-list (exact names, no
wildcard): domains under the documentation/testing TLDs ``.example`` and ``.test``. The demo
and the tests use such fictitious domains and list exactly those they use.

The organization's own addresses (sender, archive, DPO, BT-34 electronic address) and anything
at its sending domain (or a subdomain of it) receive a customer's invoice only on an account
marked as the organization's internal test account. The archive copy itself may be at the
own domain (it is the organization's mailbox), and is otherwise judged like any address.

Invariant: :meth:`AddressPolicy.refusal` is a pure function of (policy, address, flags); ``None``
is the only "may receive".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PLACEHOLDERS = frozenset({
    "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply",
    "test", "testing", "invalid", "example", "nobody", "null", "none", "unknown",
    "placeholder", "changeme", "dummy", "fake", "anonymous", "mailer-daemon",
})
NEVER_TLDS = frozenset({"invalid", "localhost", "local", "onion", "internal"})
NEVER_SUFFIXES = ("home.arpa",)
ALLOWABLE_TLDS = frozenset({"example", "test"})

# Kinds of refusal, as named in errors and guard evidence.
MALFORMED, IP_LITERAL, RESERVED, NOT_ALLOWED, OWN, PLACEHOLDER = (
    "malformed", "ip_literal", "reserved_name", "reserved_not_allow_listed", "own_address",
    "placeholder")


@dataclass(frozen=True)
class Refusal:
    kind: str
    address: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "address": self.address, "reason": self.reason}


def split(address: str) -> tuple[str, str] | None:
    """(local part, lower-cased domain), or None when it is not one ``local@domain``."""
    if address.count("@") != 1:
        return None
    local, domain = address.strip().split("@")
    domain = domain.lower().rstrip(".")
    if not local or not domain:
        return None
    return local, domain


def _ip_literal(domain: str) -> bool:
    if domain.startswith("[") or domain.endswith("]"):
        return True
    if ":" not in domain and not domain.replace(".", "").isdigit():
        # Neither IPv6 (which has a colon) nor IPv4 (digits and dots only): a name. Asked
        # first because ``ip_address`` answers a name by raising twice (~10 µs a domain).
        return False
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        return False
    return True


def never_allowed(domain: str) -> str | None:
    """Why no configuration may let mail go to ``domain`` (or None)."""
    labels = domain.lower().rstrip(".").split(".")
    if _ip_literal(domain) or all(label.isdigit() for label in labels):
        return "an IP address literal is not a mail domain sealbill sends to"
    if len(labels) < 2:
        return "a single-label domain (such as localhost) is not a public mail domain"
    if labels[-1] in NEVER_TLDS or any(domain.endswith(s) for s in NEVER_SUFFIXES):
        return f"'.{labels[-1]}' is a special-use name (RFC 6761): it must never receive mail"
    if "example" in labels[:-1]:
        return "example.com/.net/.org and other example.* names are documentation placeholders"
    return None


def allowable_reserved(domain: str) -> bool:
    """A reserved documentation/testing name that an explicit allow-list may admit."""
    return domain.lower().rstrip(".").rsplit(".", 1)[-1] in ALLOWABLE_TLDS


def allow_list_problems(domains: Iterable[str]) -> list[str]:
    """Why each entry of an allow-list cannot be on it (a wildcard, a never-allowed name)."""
    problems = []
    for domain in domains:
        if "*" in domain or domain != domain.strip().lower():
            problems.append(f"{domain!r}: exact lower-case domain names only, no wildcard")
        elif (why := never_allowed(domain)) is not None:
            problems.append(f"{domain!r}: {why}")
        elif not allowable_reserved(domain):
            problems.append(f"{domain!r}: not a reserved name; it needs no allow-list entry")
    return problems


def _local_base(local: str) -> str:
    return local.split("+", 1)[0].lower()


@dataclass(frozen=True)
class AddressPolicy:
    """The organization's view: its own domain and addresses, its allow-list, its deny list."""

    own_domains: frozenset[str] = frozenset()
    own_addresses: frozenset[str] = frozenset()
    allowed_reserved: frozenset[str] = frozenset()
    placeholders: frozenset[str] = field(default=DEFAULT_PLACEHOLDERS)

    @classmethod
    def for_organization(cls, org: Mapping[str, Any]) -> AddressPolicy:
        """From an organization row: sender/archive/DPO/electronic addresses, the sender's
        domain, and ``address_policy`` = {"allowed_reserved_domains": [...],
        "denied_local_parts": [...]} (the deny list adds to :data:`DEFAULT_PLACEHOLDERS`)."""
        own = {str(org[k]).strip().lower() for k in
               ("sender_email", "archive_email", "dpo_email", "electronic_address")
               if org.get(k)}
        sender = str(org.get("sender_email") or "").strip().lower()
        domains = {sender.rsplit("@", 1)[1]} if "@" in sender else set()
        settings = org.get("address_policy") or {}
        return cls(
            own_domains=frozenset(domains), own_addresses=frozenset(own),
            allowed_reserved=frozenset(str(d).lower() for d in
                                       settings.get("allowed_reserved_domains", ())),
            placeholders=DEFAULT_PLACEHOLDERS | frozenset(
                str(p).lower() for p in settings.get("denied_local_parts", ())))

    def _own(self, normalized: str, domain: str) -> bool:
        return normalized in self.own_addresses or any(
            domain == d or domain.endswith("." + d) for d in self.own_domains)

    def refusal(self, address: str, *, internal_test: bool = False,
                archive: bool = False) -> Refusal | None:
        """Why ``address`` may not receive (None: it may).

        ``internal_test``: the account is one of the organization's internal test accounts
        (own addresses allowed). ``archive``: the address is the archive copy (own allowed).
        """
        parts = split(address)
        if parts is None:
            return Refusal(MALFORMED, address, "not a single local@domain address")
        local, domain = parts
        normalized = f"{local.lower()}@{domain}"
        if _ip_literal(domain):
            return Refusal(IP_LITERAL, address, "an IP address literal is not a mail domain "
                           "sealbill sends to")
        if (why := never_allowed(domain)) is not None:
            return Refusal(RESERVED, address, why)
        if allowable_reserved(domain) and domain not in self.allowed_reserved:
            return Refusal(NOT_ALLOWED, address, f"{domain} is a reserved name (RFC 2606) "
                           "that is not on the organization's allow-list")
        if _local_base(local) in self.placeholders:
            return Refusal(PLACEHOLDER, address, f"'{_local_base(local)}@' is a placeholder, "
                           "not a person's mailbox")
        if not (internal_test or archive) and self._own(normalized, domain):
            return Refusal(OWN, address, "the organization's own address or sending domain "
                           "receives invoices only on an internal test account")
        return None
