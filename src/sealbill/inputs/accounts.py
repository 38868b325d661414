"""Accounts and their contacts as they enter sealbill: the Pydantic models and the file reader.

``AccountIn.model_validate(record)`` checks one record (a JSON object, or a CSV row already
mapped to the same keys); :func:`read_account_file` reads a CSV or JSON file into
``(where, record)`` pairs and refuses, naming the line and the column, what cannot be a record
(unknown or missing columns, extra cells, not JSON, not a list of objects).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sealbill import validation
from sealbill.domain.money import CURRENCY_EXPONENTS
from sealbill.inputs.fields import (
    MAYBE_EMPTY,
    TEXT_ONLY,
    Country,
    OptionalCountry,
    YesNo,
    checked,
)
from sealbill.inputs.files import not_text, open_text, read_text
from sealbill.inputs.problems import InputRejected

MAX_CONTACTS = 20
MAX_SHOWN_DIGITS = 6  # last 4, plus an IBAN's check digits
MAX_RECORDS = 1_000_000
CSV_COLUMNS = ("reference", "name", "address_line1", "address_line2", "postcode", "city",
               "country", "is_business", "vat_id", "siren", "currency", "locale",
               "payment_kind", "payment_display", "electronic_address", "billing_emails",
               "internal_test", "ip_country", "bank_country")
CSV_REQUIRED = ("reference", "name", "address_line1", "postcode", "city", "country")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OperatorVerification(_Strict):
    by: Annotated[str, TEXT_ONLY, checked(100)]
    reason: Annotated[str, TEXT_ONLY, checked(500)]


class ContactIn(_Strict):
    email: Annotated[str, TEXT_ONLY, checked(254)]
    name: Annotated[str, MAYBE_EMPTY, checked(200, required=False)] = ""
    role: Literal["billing", "admin", "technical"] = "billing"
    verified: OperatorVerification | None = None

    @field_validator("email")
    @classmethod
    def _one_address(cls, value: str) -> str:
        from sealbill.store.parties import normalize_email

        return normalize_email(value)


class AccountIn(_Strict):
    """One customer account. Text is NFC, bounded and free of control/bidi/zero-width
    characters and of card numbers/IBANs; identifiers are checked with python-stdnum."""

    reference: Annotated[str, TEXT_ONLY, checked(64)]
    name: Annotated[str, TEXT_ONLY, checked(200)]
    address_line1: Annotated[str, TEXT_ONLY, checked(200)]
    address_line2: Annotated[str, MAYBE_EMPTY, checked(200, required=False)] = ""
    postcode: Annotated[str, TEXT_ONLY, checked(20)]
    city: Annotated[str, TEXT_ONLY, checked(100)]
    country: Country
    is_business: YesNo = None
    vat_id: Annotated[str, MAYBE_EMPTY, checked(20, required=False)] = ""
    siren: Annotated[str, MAYBE_EMPTY, checked(9, required=False)] = ""
    currency: Annotated[str, MAYBE_EMPTY, checked(3, required=False)] = ""
    locale: Annotated[str, MAYBE_EMPTY, checked(2, required=False)] = ""
    payment_kind: Annotated[str, MAYBE_EMPTY, checked(20, required=False)] = ""
    payment_display: Annotated[str, MAYBE_EMPTY, checked(60, required=False)] = ""
    electronic_address: Annotated[str, MAYBE_EMPTY, checked(254, required=False)] = ""
    internal_test: YesNo = False
    # Evidence of a consumer's place of supply (OSS, art. 24b of regulation 282/2011).
    ip_country: OptionalCountry = None
    bank_country: OptionalCountry = None
    contacts: list[ContactIn] = Field(default_factory=list, max_length=MAX_CONTACTS)

    @field_validator("vat_id")
    @classmethod
    def _vat(cls, value: str) -> str:
        if value and (problem := validation.vat_id_problem(value)):
            raise ValueError(problem)
        return validation.normalize_vat_id(value) if value else ""

    @field_validator("siren")
    @classmethod
    def _siren(cls, value: str) -> str:
        if value and (problem := validation.siren_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("payment_display")
    @classmethod
    def _masked(cls, value: str) -> str:
        # Masked means the last digits only: "Visa •••• 4242", "IBAN FR76 •••• 0189".
        if sum(ch.isdigit() for ch in value) > MAX_SHOWN_DIGITS:
            raise ValueError(f"a masked payment method shows at most {MAX_SHOWN_DIGITS} "
                             "digits (brand + last 4, e.g. 'Visa •••• 4242')")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value and value.upper() not in CURRENCY_EXPONENTS:
            raise ValueError(f"unknown currency {value!r} (an ISO 4217 code sealbill knows)")
        return value.upper()

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if value and value.lower() not in ("fr", "en"):
            raise ValueError(f"expected fr or en, got {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _one_role_per_address(self) -> AccountIn:
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
