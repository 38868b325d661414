"""The seller organization as it enters sealbill: created whole, then changed by section.

Identifiers are checked with :mod:`sealbill.validation` (python-stdnum, schwifty), addresses
with :func:`~sealbill.inputs.models.one_email`, the country against ISO 3166 (pycountry).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sealbill import validation
from sealbill.inputs.fields import Country
from sealbill.inputs.models import Code, Model, Text, known_currency, one_email, problem_check


class OrganizationIn(Model):
    slug: Code
    legal_name: Text
    address_line1: Text
    address_line2: str = ""
    postcode: Text
    city: Text
    country: Country
    siren: str | None = None
    siret: str | None = None
    vat_id: str | None = None
    legal_info: str | None = None
    iban: str | None = None
    bic: str | None = None
    invoice_series: Text = "F-"
    credit_note_series: str | None = None
    default_locale: Literal["fr", "en"] = "fr"
    default_currency: str = "EUR"
    sender_email: str
    sender_name: Text
    archive_email: str | None = None
    electronic_address: str | None = None
    phone: str | None = None
    website: str | None = None
    payment_terms_days: int = Field(30, ge=0, le=365)
    dpo_name: str | None = None
    dpo_email: str | None = None

    _c = field_validator("default_currency")(known_currency)
    _e = field_validator("sender_email", "archive_email", "dpo_email")(one_email)

    @field_validator("siren")
    @classmethod
    def _siren(cls, v: str | None) -> str | None:
        if v:
            problem_check(validation.siren_problem(v))
        return v or None

    @field_validator("siret")
    @classmethod
    def _siret(cls, v: str | None) -> str | None:
        if v:
            problem_check(validation.siret_problem(v))
        return v or None

    @field_validator("vat_id")
    @classmethod
    def _vat(cls, v: str | None) -> str | None:
        if v:
            problem_check(validation.vat_id_problem(v))
            return validation.normalize_vat_id(v)
        return None

    @field_validator("iban")
    @classmethod
    def _iban(cls, v: str | None) -> str | None:
        if v:
            problem_check(validation.iban_problem(v))
            return v.replace(" ", "").upper()
        return None

    @field_validator("bic")
    @classmethod
    def _bic(cls, v: str | None) -> str | None:
        if v:
            problem_check(validation.bic_problem(v))
        return v or None


class OrganizationIdentity(Model):
    """``organizations set identity``: the seller as printed on invoices."""

    legal_name: Text | None = None
    address_line1: Text | None = None
    address_line2: str | None = None
    postcode: Text | None = None
    city: Text | None = None
    country: Country | None = None
    siren: str | None = None
    siret: str | None = None
    vat_id: str | None = None
    legal_info: str | None = None
    iban: str | None = None
    bic: str | None = None
    phone: str | None = None
    website: str | None = None
    dpo_name: str | None = None
    dpo_email: str | None = None

    _siren = OrganizationIn._siren
    _siret = OrganizationIn._siret
    _vat = OrganizationIn._vat
    _iban = OrganizationIn._iban
    _bic = OrganizationIn._bic
    _e = field_validator("dpo_email")(one_email)


class OrganizationSending(Model):
    sender_email: str | None = None
    sender_name: Text | None = None
    archive_email: str | None = None
    electronic_address: str | None = None

    _e = field_validator("sender_email", "archive_email", "electronic_address")(one_email)


class OrganizationSeries(Model):
    invoice_series: Text | None = None
    credit_note_series: Text | None = None
