"""Import accounts with their contacts from CSV or JSON: every problem reported, all or nothing.

A record is checked whole (:class:`sealbill.inputs.accounts.AccountRecordIn`: the CLI and
API's ``AccountIn`` with its ``ContactIn`` contacts) before anything is written; the first
problem does not hide the others (each names the file, the record — line or index and
reference — and the field). Then every account, contact and link is written in one transaction,
a chunk of accounts per group of statements (:mod:`sealbill.store.parties.bulk`).

CSV columns (a header line; unknown, repeated or missing required columns are refused):
reference, name, address_line1, address_line2, postcode, city, country, is_business, vat_id,
siren, currency, locale, payment_kind, payment_display, electronic_address, billing_emails
(``;``-separated), internal_test. JSON: a list of objects with the same keys (or the API's
``is_internal_test``), and ``contacts`` as a list of ``{"email", "name", "role", "verified"}``
where ``verified`` is ``{"by": ..., "reason": ...}`` for an operator confirmation. Files are
UTF-8 (a BOM accepted) or UTF-16 with a BOM. ``ip_country`` and ``bank_country`` (optional)
are evidence of a consumer's place of supply (OSS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Connection

from sealbill.domain.address_policy import AddressPolicy
from sealbill.inputs.accounts import AccountRecordIn, is_shape_problem, read_account_file
from sealbill.inputs.problems import InputRejected, label_problems
from sealbill.store.parties import address_rules, bulk
from sealbill.store.parties import records as parties


class ImportRejected(InputRejected):
    """Bad input (exit code 2): every problem, nothing written."""

    def __init__(self, problems: list[str], total: int | None = None,
                 what: str = "nothing was imported") -> None:
        super().__init__(problems, total, what)


@dataclass
class AccountRecord:
    where: str
    values: dict[str, Any]
    contacts: list[dict[str, Any]] = field(default_factory=list)


def _label(where: str, item: Any) -> str:
    ref = item.get("reference") if isinstance(item, Mapping) else None
    ref = str(ref)[:64] if isinstance(ref, str) and ref.strip() else "?"
    return f"{where} (account {ref!r})"


def check_record(where: str, item: Any, defaults: Mapping[str, str],
                 policy: AddressPolicy | None = None
                 ) -> tuple[AccountRecord | None, list[str]]:
    """The record's values ready to store, or every problem of it."""
    if is_shape_problem(item):
        return None, [f"{where}: {item}"]
    if not isinstance(item, Mapping):
        return None, [f"{where}: expected an object with the account's fields, got "
                      f"{type(item).__name__}"]
    try:
        account = AccountRecordIn.model_validate(item)
    except ValidationError as exc:
        return None, label_problems(_label(where, item), exc)
    values = {
        "reference": account.reference, "name": account.name,
        "address_line1": account.address_line1, "address_line2": account.address_line2,
        "postcode": account.postcode, "city": account.city, "country": account.country,
        "is_business": account.is_business if account.is_business is not None
        else bool(account.vat_id),
        "vat_id": account.vat_id or None, "vat_id_valid": bool(account.vat_id),
        "siren": account.siren or None,
        "currency": account.currency or defaults["currency"],
        "locale": account.locale or defaults["locale"],
        "payment_kind": account.payment_kind or None,
        "payment_display": account.payment_display or None,
        "electronic_address": account.electronic_address or None,
        "is_internal_test": account.is_internal_test,
        "ip_country": account.ip_country, "bank_country": account.bank_country,
    }
    contacts = [contact.model_dump() for contact in account.contacts]
    problems = _address_refusals(_label(where, item), contacts, account.is_internal_test,
                                 policy or AddressPolicy())
    if problems:
        return None, problems
    return AccountRecord(where, values, contacts), []


def _address_refusals(label: str, contacts: list[dict[str, Any]], internal: bool,
                      policy: AddressPolicy) -> list[str]:
    """Reserved, placeholder and own addresses (domain/address_policy.py), field named."""
    problems = []
    for index, contact in enumerate(contacts):
        email = str(contact.get("email") or "")
        billing = contact.get("role", "billing") == "billing"
        refusal = policy.refusal(email, internal_test=internal or not billing)
        if refusal is not None:
            problems.append(f"{label}: contacts[{index}].email: {email!r} refused "
                            f"({refusal.kind}): {refusal.reason}")
    return problems


def import_accounts(conn: Connection, org_id: int, path: Path, *, actor: str) -> dict[str, int]:
    """Check every record, then write all of them in the caller's transaction.

    Raises :class:`ImportRejected` (nothing written) when any record has a problem.
    """
    org = parties.organization(conn, org_id)
    defaults = {"currency": org["default_currency"], "locale": org["default_locale"]}
    policy = address_rules.policy_for(conn, org_id)
    records: list[AccountRecord] = []
    problems: list[str] = []
    seen: set[str] = set()
    try:
        for where, item in read_account_file(path):
            record, found = check_record(where, item, defaults, policy)
            problems.extend(found)
            if record:
                if record.values["reference"] in seen:
                    problems.append(f"{where}: field 'reference': duplicate "
                                    f"{record.values['reference']!r} in the file")
                seen.add(record.values["reference"])
                records.append(record)
    except InputRejected as exc:
        raise ImportRejected(exc.problems) from None
    existing = parties.account_ids_by_reference(conn, org_id)
    problems.extend(f"{r.where}: field 'reference': account {r.values['reference']!r} exists"
                    for r in records if r.values["reference"] in existing)
    if problems:
        raise ImportRejected(problems)
    return bulk.write_accounts(conn, org_id, [bulk.NewAccount(r.values, r.contacts)
                                              for r in records], actor=actor, policy=policy)
