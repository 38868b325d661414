"""Accounts and their contacts as they enter sealbill, by any door: the models and the file reader.

:class:`AccountIn`, :class:`AccountPatch` and :class:`ContactIn` are the only rules for an
account and a contact: the CLI and API create/update commands (through the application layer)
and :class:`AccountRecordIn`, a record of an import file (an account with its contacts), all
validate with them, so the same value is accepted or refused — naming the same field — by each.
:func:`read_account_file` reads a CSV or JSON file into ``(where, record)`` pairs and refuses,
naming the line and the column, what cannot be a record (unknown or missing columns, extra
cells, not JSON, not a list of objects).

Invariants of a validated account: text is NFC, bounded by its column's size and free of
control/bidi/zero-width characters and of card numbers/IBANs; the reference is letters, digits
and ``_ . -``; country codes are ISO 3166 (pycountry); VAT id and SIREN pass python-stdnum;
a payment display is masked; an electronic address and contact addresses are one e-mail
address each; an absent optional value is ``None``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field, field_validator, model_validator

from sealbill import validation
from sealbill.domain.money import CURRENCY_EXPONENTS
from sealbill.inputs.fields import (
    MAYBE_EMPTY,
    TEXT_ONLY,
    Country,
    OptionalCountry,
    YesNo,
    YesNoFalse,
    checked,
)
from sealbill.inputs.files import not_text, open_text, read_text
from sealbill.inputs.models import CustomerRecord, one_email
from sealbill.inputs.problems import InputRejected

MAX_CONTACTS = 20
MAX_SHOWN_DIGITS = 6  # last 4, plus an IBAN's check digits
MAX_RECORDS = 1_000_000
CSV_COLUMNS = ("reference", "name", "address_line1", "address_line2", "postcode", "city",
               "country", "is_business", "vat_id", "siren", "currency", "locale",
               "payment_kind", "payment_display", "electronic_address", "billing_emails",
               "internal_test", "ip_country", "bank_country")
CSV_REQUIRED = ("reference", "name", "address_line1", "postcode", "city", "country")
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

Role = Literal["billing", "admin", "technical"]


def _reference(value: str) -> str:
    if not _REFERENCE.fullmatch(value):
        raise ValueError("letters, digits, '_', '.' and '-' only, starting with a letter or "
                         f"a digit (at most 64), got {value!r:.70}")
    return value


def _none_if_empty(value: str) -> str | None:
    return value or None


Name = Annotated[str, TEXT_ONLY, checked(200)]
AddressLine = Annotated[str, TEXT_ONLY, checked(200)]
OptionalLine = Annotated[str, MAYBE_EMPTY, checked(200, required=False)]
Postcode = Annotated[str, TEXT_ONLY, checked(20)]
City = Annotated[str, TEXT_ONLY, checked(100)]
Reference = Annotated[str, TEXT_ONLY, checked(64), AfterValidator(_reference)]
# Optional customer text: checked, and None when absent or empty.
_NONE_IF_EMPTY = AfterValidator(_none_if_empty)
VatId = Annotated[str | None, MAYBE_EMPTY, checked(20, required=False), _NONE_IF_EMPTY]
Siren = Annotated[str | None, MAYBE_EMPTY, checked(9, required=False), _NONE_IF_EMPTY]
Currency = Annotated[str | None, MAYBE_EMPTY, checked(3, required=False), _NONE_IF_EMPTY]
Locale = Annotated[str | None, MAYBE_EMPTY, checked(2, required=False), _NONE_IF_EMPTY]
PaymentKind = Annotated[str | None, MAYBE_EMPTY, checked(20, required=False), _NONE_IF_EMPTY]
PaymentDisplay = Annotated[str | None, MAYBE_EMPTY, checked(60, required=False),
                           _NONE_IF_EMPTY]
ElectronicAddress = Annotated[str | None, MAYBE_EMPTY, checked(254, required=False),
                              _NONE_IF_EMPTY]


def _vat(value: str | None) -> str | None:
    if value and (problem := validation.vat_id_problem(value)):
        raise ValueError(problem)
    return validation.normalize_vat_id(value) if value else None


def _siren(value: str | None) -> str | None:
    if value and (problem := validation.siren_problem(value)):
        raise ValueError(problem)
    return value


def _masked(value: str | None) -> str | None:
    # Masked means the last digits only: "Visa •••• 4242", "IBAN FR76 •••• 0189".
    if value and sum(ch.isdigit() for ch in value) > MAX_SHOWN_DIGITS:
        raise ValueError(f"a masked payment method shows at most {MAX_SHOWN_DIGITS} "
                         "digits (brand + last 4, e.g. 'Visa •••• 4242')")
    return value


def _currency(value: str | None) -> str | None:
    if value and value.upper() not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown currency {value!r} (an ISO 4217 code sealbill knows)")
    return value.upper() if value else None


def _locale(value: str | None) -> str | None:
    if value and value.lower() not in ("fr", "en"):
        raise ValueError(f"expected fr or en, got {value!r}")
    return value.lower() if value else None


class OperatorVerification(CustomerRecord):
    by: Annotated[str, TEXT_ONLY, checked(100)]
    reason: Annotated[str, TEXT_ONLY, checked(500)]


class ContactIn(CustomerRecord):
    """A contact of an account: one e-mail address, an optional name, a role."""

    email: Annotated[str, TEXT_ONLY, checked(254)]
    name: Annotated[str, MAYBE_EMPTY, checked(200, required=False)] = ""
    role: Role = "billing"

    _email = field_validator("email")(one_email)


class ImportedContactIn(ContactIn):
    """A contact in an import file, which may carry an operator's verification."""

    verified: OperatorVerification | None = None


class AccountIn(CustomerRecord):
    """One customer account (create). Text is NFC, bounded and free of control/bidi/zero-width
    characters and of card numbers/IBANs; identifiers are checked with python-stdnum."""

    reference: Reference
    name: Name
    address_line1: AddressLine
    address_line2: OptionalLine = ""
    postcode: Postcode
    city: City
    country: Country
    is_business: YesNo = None  # None: a business when it has a VAT id
    vat_id: VatId = None
    siren: Siren = None
    currency: Currency = None
    locale: Locale = None
    payment_kind: PaymentKind = None
    payment_display: PaymentDisplay = None
    electronic_address: ElectronicAddress = None
    is_internal_test: YesNoFalse = Field(
        False, validation_alias=AliasChoices("is_internal_test", "internal_test"))
    # Evidence of a consumer's place of supply (OSS, art. 24b of regulation 282/2011).
    ip_country: OptionalCountry = None
    bank_country: OptionalCountry = None

    _vat = field_validator("vat_id")(_vat)
    _siren = field_validator("siren")(_siren)
    _masked = field_validator("payment_display")(_masked)
    _currency = field_validator("currency")(_currency)
    _locale = field_validator("locale")(_locale)
    _email = field_validator("electronic_address")(one_email)


class AccountPatch(CustomerRecord):
    """The fields of an account an update may change, with :class:`AccountIn`'s rules."""

    name: Name | None = None
    address_line1: AddressLine | None = None
    address_line2: OptionalLine | None = None
    postcode: Postcode | None = None
    city: City | None = None
    country: Country | None = None
    is_business: YesNo = None
    vat_id: VatId = None
    siren: Siren = None
    locale: Locale = None
    payment_kind: PaymentKind = None
    payment_display: PaymentDisplay = None
    electronic_address: ElectronicAddress = None

    _vat = field_validator("vat_id")(_vat)
    _siren = field_validator("siren")(_siren)
    _masked = field_validator("payment_display")(_masked)
    _locale = field_validator("locale")(_locale)
    _email = field_validator("electronic_address")(one_email)


class AccountRecordIn(AccountIn):
    """A record of an import file: an account with its contacts."""

    contacts: list[ImportedContactIn] = Field(default_factory=list, max_length=MAX_CONTACTS)

    @model_validator(mode="after")
    def _one_role_per_address(self) -> AccountRecordIn:
        seen = [(c.email.lower(), c.role) for c in self.contacts]
        if len(set(seen)) != len(seen):
            raise ValueError("contacts: the same address twice with the same role")
        return self


def _json_records(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise InputRejected([f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON "
                             f"({exc.msg})"]) from None
    except RecursionError:
        raise InputRejected([f"{path}: JSON nested too deeply"]) from None
    if not isinstance(data, list):
        raise InputRejected([f"{path}: expected a JSON list of account objects, got "
                             f"{type(data).__name__}"])
    if len(data) > MAX_RECORDS:
        raise InputRejected([f"{path}: {len(data)} records, at most {MAX_RECORDS} per file"])
    for index, item in enumerate(data):
        yield f"{path.name}: record {index}", item


def _csv_header(path: Path, header: list[str] | None) -> list[str]:
    if header is None:
        raise InputRejected([f"{path}: empty file, expected a header line with the columns "
                             f"{', '.join(CSV_REQUIRED)}"])
    problems = [f"{path}: line 1: column {name!r}: unknown column (expected some of "
                f"{', '.join(CSV_COLUMNS)})" for name in header if name not in CSV_COLUMNS]
    problems += [f"{path}: line 1: column {name!r}: the same column twice"
                 for name in sorted({n for n in header if header.count(n) > 1})]
    problems += [f"{path}: line 1: column {name!r}: required column missing"
                 for name in CSV_REQUIRED if name not in header]
    if problems:
        raise InputRejected(problems)
    return header


def _csv_records(path: Path) -> Iterator[tuple[str, Any]]:
    handle, encoding = open_text(path, newline="")
    with handle:
        try:
            reader = csv.reader(handle, strict=True)
            header = _csv_header(path, next(reader, None))
            for row in reader:
                where = f"{path.name}: line {reader.line_num}"
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    yield where, _ShapeProblem(f"{len(row)} cells, the header has "
                                               f"{len(header)} columns")
                    continue
                record: dict[str, Any] = {k: v for k, v in zip(header, row, strict=True) if v}
                emails = record.pop("billing_emails", "")
                record["contacts"] = [{"email": e.strip(), "role": "billing"}
                                      for e in emails.split(";") if e.strip()]
                yield where, record
        except UnicodeDecodeError:
            raise not_text(path, encoding) from None
        except csv.Error as exc:
            raise InputRejected([f"{path}: line {reader.line_num}: not valid CSV ({exc})"]
                                ) from None


class _ShapeProblem(str):
    """A CSV row that cannot be a record at all (its problem, not its values)."""


def read_account_file(path: Path) -> Iterator[tuple[str, Any]]:
    """``(where, record)`` of each record; a record may be a :class:`_ShapeProblem`."""
    if path.suffix.lower() == ".json":
        return _json_records(path)
    if path.suffix.lower() == ".csv":
        return _csv_records(path)
    raise InputRejected([f"{path}: unknown file type {path.suffix!r}; expected .csv or .json"])


def is_shape_problem(record: Any) -> bool:
    return isinstance(record, _ShapeProblem)
