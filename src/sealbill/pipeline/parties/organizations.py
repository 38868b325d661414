"""The seller organization: checked field by field, created with its number series."""

from __future__ import annotations

from typing import Any

from sealbill import validation
from sealbill.domain.address_policy import AddressPolicy, allow_list_problems
from sealbill.pipeline.parties.accounts_import import ImportRejected
from sealbill.store.billing.invoices import ensure_series
from sealbill.store.parties import records as parties

ORG_FIELDS = ("slug", "legal_name", "address_line1", "postcode", "city", "country",
              "invoice_series", "default_locale", "default_currency", "sender_email",
              "sender_name")


def organization_problems(values: dict[str, Any]) -> list[str]:
    """Every problem of an organization record, each naming its field."""
    problems = [f"organization: field {name!r} is required" for name in ORG_FIELDS
                if not str(values.get(name) or "").strip()]
    if str(values.get("country", "")).upper() == "FR" and not values.get("legal_info"):
        problems.append("organization: field 'legal_info' is required for a French seller "
                        "(legal form, share capital and RCS, printed on every invoice)")
    checks = {"siren": validation.siren_problem, "siret": validation.siret_problem,
              "vat_id": validation.vat_id_problem, "iban": validation.iban_problem,
              "bic": validation.bic_problem}
    for name, check in checks.items():
        if values.get(name) and (problem := check(str(values[name]))):
            problems.append(f"organization: field {name!r}: {problem}")
    return problems + address_problems(values)


def address_problems(values: dict[str, Any]) -> list[str]:
    """The allow-list's entries, and the archive address (a recipient of every message)."""
    settings = values.get("address_policy") or {}
    if not isinstance(settings, dict) or set(settings) - {"allowed_reserved_domains",
                                                          "denied_local_parts"}:
        return ["organization: field 'address_policy': expected an object with "
                "'allowed_reserved_domains' and/or 'denied_local_parts'"]
    problems = [f"organization: field 'address_policy.allowed_reserved_domains': {p}"
                for p in allow_list_problems(settings.get("allowed_reserved_domains", ()))]
    policy = AddressPolicy.for_organization(values)
    archive = values.get("archive_email")
    if archive and (refusal := policy.refusal(str(archive), archive=True)) is not None:
        problems.append(f"organization: field 'archive_email': {archive!r} refused "
                        f"({refusal.kind}): {refusal.reason}")
    return problems


def create_org(conn: Any, values: dict[str, Any]) -> int:
    """Create the organization after checking every field; :class:`ImportRejected` lists
    all problems."""
    problems = organization_problems(values)
    if problems:
        raise ImportRejected(problems)
    values = dict(values)
    if values.get("vat_id"):
        values["vat_id"] = validation.normalize_vat_id(values["vat_id"])
    if values.get("iban"):
        values["iban"] = str(values["iban"]).replace(" ", "").upper()
    org_id = parties.create_organization(conn, **values)
    org = parties.organization(conn, org_id)
    ensure_series(conn, org_id, org["invoice_series"])
    ensure_series(conn, org_id, org["credit_note_series"])
    return org_id
