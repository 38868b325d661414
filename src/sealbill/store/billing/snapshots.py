"""Seller and buyer snapshots: rows frozen into JSON at finalization, and read back as parties.

An issued invoice never joins live rows: if the customer moves next year, last year's invoice
still shows the address it was issued to.
"""

from __future__ import annotations

from typing import Any

from sealbill.domain.invoices import Address, Party, PaymentMethod, Seller
from sealbill.store.db import Row


def _address(row: Row) -> dict[str, str]:
    return {
        "line1": row["address_line1"],
        "line2": row["address_line2"] or "",
        "postcode": row["postcode"],
        "city": row["city"],
        "country": row["country"],
    }


def seller_snapshot(org: Row) -> dict[str, Any]:
    return {
        "name": org["legal_name"],
        "address": _address(org),
        "vat_id": org["vat_id"],
        "legal_id": org["siren"],
        "legal_id_scheme": "0002" if org["siren"] else None,
        "siret": org["siret"],
        "legal_info": org["legal_info"],
        "electronic_address": org["electronic_address"] or org["sender_email"],
        "electronic_address_scheme": org["electronic_address_scheme"] or "EM",
        "email": org["sender_email"],
        "iban": org["iban"],
        "bic": org["bic"],
        "phone": org["phone"],
        "website": org["website"],
    }


def buyer_snapshot(account: Row, billing_email: str | None) -> dict[str, Any]:
    return {
        "name": account["name"],
        "address": _address(account),
        "vat_id": account["vat_id"],
        "legal_id": account["siren"],
        "legal_id_scheme": "0002" if account["siren"] else None,
        "electronic_address": account["electronic_address"] or billing_email,
        "electronic_address_scheme": account["electronic_address_scheme"] or "EM",
        "email": billing_email,
    }


def payment_snapshot(account: Row) -> dict[str, str] | None:
    if not account["payment_kind"]:
        return None
    return {"kind": account["payment_kind"], "display": account["payment_display"] or ""}


def seller_from(snapshot: Row) -> Seller:
    data = dict(snapshot)
    return Seller(address=Address(**data.pop("address")), **data)


def party_from(snapshot: Row) -> Party:
    data = dict(snapshot)
    return Party(address=Address(**data.pop("address")), **data)


def payment_from(snapshot: Row | None) -> PaymentMethod | None:
    return None if not snapshot else PaymentMethod(**snapshot)
