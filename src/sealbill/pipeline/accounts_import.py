"""Import accounts with their contacts from CSV or JSON: every problem reported, all or nothing.

A record is checked whole before anything is written; the first problem does not hide the
others (each names the record — line or index and reference — and the field). Then every
account, contact and link is written in one transaction.

CSV columns: reference, name, address_line1, address_line2, postcode, city, country,
is_business, vat_id, siren, currency, locale, payment_kind, payment_display,
electronic_address, billing_emails (``;``-separated), internal_test. JSON: a list of objects
with the same keys, and ``contacts`` as a list of ``{"email", "name", "role", "verified"}``
where ``verified`` is ``{"by": ..., "reason": ...}`` for an operator confirmation.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from sealbill import validation
from sealbill.domain.address_policy import AddressPolicy
from sealbill.domain.money import CURRENCY_EXPONENTS
from sealbill.store import address_rules, parties
from sealbill.store.db import Row

REQUIRED = ("reference", "name", "address_line1", "postcode", "city", "country")


class ImportRejected(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s); nothing was imported")
        self.problems = problems


@dataclass
class AccountRecord:
    where: str
    values: dict[str, Any]
    contacts: list[dict[str, Any]] = field(default_factory=list)


def read_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ImportRejected([f"{path}: expected a JSON list of accounts"])
        for index, item in enumerate(data):
            yield f"record {index}", item
        return
    with path.open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.DictReader(handle), start=2):
            emails = [e for e in (row.pop("billing_emails", "") or "").split(";") if e.strip()]
            record: dict[str, Any] = dict(row)
            record["contacts"] = [{"email": e.strip(), "role": "billing"} for e in emails]
            yield f"line {line_no}", record


def _bool(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "y")


def check_record(where: str, item: Row, defaults: Mapping[str, str],
                 policy: AddressPolicy | None = None
                 ) -> tuple[AccountRecord | None, list[str]]:
    ref = item.get("reference") or "?"
    label = f"{where} (account {ref})"
    problems = [f"{label}: field {name!r} is required" for name in REQUIRED
                if not str(item.get(name) or "").strip()]
    country = str(item.get("country") or "").strip().upper()
    currency = str(item.get("currency") or defaults["currency"]).upper()
    locale = str(item.get("locale") or defaults["locale"]).lower()
    if currency not in CURRENCY_EXPONENTS:
        problems.append(f"{label}: field 'currency': unknown currency {currency!r}")
    if locale not in ("fr", "en"):
        problems.append(f"{label}: field 'locale': expected fr or en, got {locale!r}")
    vat_id = str(item.get("vat_id") or "").strip() or None
    vat_valid = False
    if vat_id:
        problem = validation.vat_id_problem(vat_id)
        if problem:
            problems.append(f"{label}: field 'vat_id': {problem}")
        else:
            vat_id, vat_valid = validation.normalize_vat_id(vat_id), True
    siren = str(item.get("siren") or "").strip() or None
    if siren and (problem := validation.siren_problem(siren)):
        problems.append(f"{label}: field 'siren': {problem}")
    display = str(item.get("payment_display") or "")
    if validation.looks_like_full_card_number(display) or _has_full_iban(display):
        problems.append(f"{label}: field 'payment_display': looks like a full card number or "
                        "IBAN; sealbill stores only the masked form (brand + last 4)")
    contacts = list(item.get("contacts") or [])
    internal = _bool(item.get("internal_test", False))
    for index, contact in enumerate(contacts):
        try:
            email = parties.normalize_email(str(contact.get("email") or ""))
        except ValueError as exc:
            problems.append(f"{label}: contacts[{index}].email: {exc}")
            continue
        billing = contact.get("role", "billing") == "billing"
        refusal = (policy or AddressPolicy()).refusal(email, internal_test=internal or not billing)
        if refusal is not None:
            problems.append(f"{label}: contacts[{index}].email: {email!r} refused "
                            f"({refusal.kind}): {refusal.reason}")
        if contact.get("role", "billing") not in parties.ROLES:
            problems.append(f"{label}: contacts[{index}].role: expected one of {parties.ROLES}")
    if problems:
        return None, problems
    values = {
        "reference": str(item["reference"]).strip(), "name": str(item["name"]).strip(),
        "address_line1": str(item["address_line1"]).strip(),
        "address_line2": str(item.get("address_line2") or "").strip(),
        "postcode": str(item["postcode"]).strip(), "city": str(item["city"]).strip(),
        "country": country, "is_business": _bool(item.get("is_business", bool(vat_id))),
        "vat_id": vat_id, "vat_id_valid": vat_valid, "siren": siren,
        "currency": currency, "locale": locale,
        "payment_kind": str(item.get("payment_kind") or "") or None,
        "payment_display": display or None,
        "electronic_address": str(item.get("electronic_address") or "") or None,
        "is_internal_test": _bool(item.get("internal_test", False)),
    }
    return AccountRecord(where, values, contacts), []


def _has_full_iban(text: str) -> bool:
    compact = text.replace(" ", "")
    return len(compact) >= 15 and compact[:2].isalpha() and compact[2:4].isdigit() and \
        validation.iban_problem(compact) is None


def import_accounts(conn: Connection, org_id: int, path: Path, *, actor: str) -> dict[str, int]:
    """Check every record, then write all of them in the caller's transaction."""
    org = parties.organization(conn, org_id)
    defaults = {"currency": org["default_currency"], "locale": org["default_locale"]}
    policy = address_rules.policy_for(conn, org_id)
    records, problems, seen = [], [], set()
    for where, item in read_records(path):
        record, found = check_record(where, item, defaults, policy)
        problems.extend(found)
        if record:
            if record.values["reference"] in seen:
                problems.append(f"{where}: field 'reference': duplicate "
                                f"{record.values['reference']!r} in the file")
            seen.add(record.values["reference"])
            records.append(record)
    existing = parties.account_ids_by_reference(conn, org_id)
    problems.extend(f"{r.where}: field 'reference': account {r.values['reference']!r} exists"
                    for r in records if r.values["reference"] in existing)
    if problems:
        raise ImportRejected(problems)
    counts = {"accounts": 0, "contacts": 0, "verified": 0}
    for record in records:
        account_id = parties.create_account(conn, org_id, **record.values)
        counts["accounts"] += 1
        for contact in record.contacts:
            counts["verified"] += _import_contact(conn, org_id, account_id, contact, actor,
                                                  policy)
            counts["contacts"] += 1
    return counts


def _import_contact(conn: Connection, org_id: int, account_id: int,
                    contact: Row, actor: str, policy: AddressPolicy) -> int:
    contact_id = parties.add_contact(conn, org_id, contact["email"],
                                     name=contact.get("name", ""), actor=actor, policy=policy)
    link_id = parties.link_contact(conn, org_id, contact_id, account_id,
                                   contact.get("role", "billing"), actor=actor, policy=policy)
    verified = contact.get("verified")
    if not verified:
        return 0
    parties.set_link_status(conn, org_id, link_id, "verified", actor=verified["by"],
                            method="operator", reason=verified["reason"], policy=policy)
    return 1
