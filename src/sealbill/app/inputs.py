"""Input models of the use cases (Pydantic v2): the CLI and the HTTP API both parse into them.

Identifier checks call :mod:`sealbill.validation` (python-stdnum, schwifty) and e-mail
addresses :func:`sealbill.store.parties.normalize_email`, the same checks as the file imports.
Models refuse unknown fields (``extra="forbid"``) and floats for money (prices are strings or
integers, parsed as ``Decimal``). :func:`parse` turns a ``ValidationError`` into
:class:`~sealbill.app.errors.Invalid` naming every field.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from sealbill import validation
from sealbill.app.errors import Invalid, Problem
from sealbill.domain.money import CURRENCY_EXPONENTS
from sealbill.inputs.usage import decimal_problem

M = TypeVar("M", bound=BaseModel)


def _no_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("give decimals as strings (\"0.10\"), never as floats")
    return value


Dec = Annotated[Decimal, BeforeValidator(_no_float)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ExternalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


def _check(problem: str | None) -> None:
    if problem:
        raise ValueError(problem)


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    from sealbill.store.parties import normalize_email

    return normalize_email(value)


def _currency(value: str) -> str:
    if value.upper() not in CURRENCY_EXPONENTS:
        raise ValueError(f"unknown currency {value!r}")
    return value.upper()


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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

    _c = field_validator("default_currency")(_currency)
    _e = field_validator("sender_email", "archive_email", "dpo_email")(_email)

    @field_validator("siren")
    @classmethod
    def _siren(cls, v: str | None) -> str | None:
        if v:
            _check(validation.siren_problem(v))
        return v or None

    @field_validator("siret")
    @classmethod
    def _siret(cls, v: str | None) -> str | None:
        if v:
            _check(validation.siret_problem(v))
        return v or None

    @field_validator("vat_id")
    @classmethod
    def _vat(cls, v: str | None) -> str | None:
        if v:
            _check(validation.vat_id_problem(v))
            return validation.normalize_vat_id(v)
        return None

    @field_validator("iban")
    @classmethod
    def _iban(cls, v: str | None) -> str | None:
        if v:
            _check(validation.iban_problem(v))
            return v.replace(" ", "").upper()
        return None

    @field_validator("bic")
    @classmethod
    def _bic(cls, v: str | None) -> str | None:
        if v:
            _check(validation.bic_problem(v))
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
    _e = field_validator("dpo_email")(_email)


class OrganizationSending(Model):
    sender_email: str | None = None
    sender_name: Text | None = None
    archive_email: str | None = None
    electronic_address: str | None = None

    _e = field_validator("sender_email", "archive_email", "electronic_address")(_email)


class OrganizationSeries(Model):
    invoice_series: Text | None = None
    credit_note_series: Text | None = None


class AccountIn(Model):
    reference: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: Text
    address_line1: Text
    address_line2: str = ""
    postcode: Text
    city: Text
    country: Country
    is_business: bool = False
    vat_id: str | None = None
    siren: str | None = None
    currency: str | None = None
    locale: Literal["fr", "en"] | None = None
    payment_kind: str | None = None
    payment_display: str | None = None
    electronic_address: str | None = None
    is_internal_test: bool = False

    _vat = OrganizationIn._vat
    _siren = OrganizationIn._siren
    _e = field_validator("electronic_address")(_email)

    @field_validator("currency")
    @classmethod
    def _cur(cls, v: str | None) -> str | None:
        return _currency(v) if v else None

    @field_validator("payment_display")
    @classmethod
    def _masked(cls, v: str | None) -> str | None:
        from sealbill.inputs.secrets import payment_secret_problem

        if v and (problem := payment_secret_problem(v)):
            raise ValueError(problem)
        return v or None


class AccountPatch(Model):
    name: Text | None = None
    address_line1: Text | None = None
    address_line2: str | None = None
    postcode: Text | None = None
    city: Text | None = None
    country: Country | None = None
    is_business: bool | None = None
    vat_id: str | None = None
    siren: str | None = None
    locale: Literal["fr", "en"] | None = None
    payment_kind: str | None = None
    payment_display: str | None = None
    electronic_address: str | None = None

    _vat = OrganizationIn._vat
    _siren = OrganizationIn._siren
    _masked = AccountIn._masked
    _e = field_validator("electronic_address")(_email)


Role = Literal["billing", "admin", "technical"]


class ContactIn(Model):
    email: str
    name: str = ""
    role: Role = "billing"

    _e = field_validator("email")(_email)


class MetricIn(Model):
    """A metric; ``min_value``/``max_value`` (inclusive) and ``decimal_places`` (0: integers
    only) bound the usage values accepted at import."""

    code: Code
    name: Text
    aggregation: Literal["sum", "count", "max", "unique_count", "latest", "time_weighted_sum"]
    field: str | None = None
    allows_negative: bool = False
    min_value: Dec | None = None
    max_value: Dec | None = None
    decimal_places: Annotated[int, Field(ge=0, le=12, strict=True)] | None = None

    @field_validator("min_value", "max_value")
    @classmethod
    def _limit(cls, value: Decimal | None) -> Decimal | None:
        if value is not None:
            _check(decimal_problem(value, allows_negative=True))
        return value

    @model_validator(mode="after")
    def _range(self) -> MetricIn:
        low, high = self.min_value, self.max_value
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_value {low} is above max_value {high}")
        if low is not None and low < 0 and not self.allows_negative:
            raise ValueError(f"min_value {low} is negative: set allows_negative: true")
        return self

    def limits(self) -> dict[str, Any]:
        """The columns of the metric's range and precision."""
        return {"allows_negative": self.allows_negative, "min_value": self.min_value,
                "max_value": self.max_value, "decimal_places": self.decimal_places}


class TierIn(Model):
    up_to: Dec | None = None
    unit_price: Dec
    flat_fee: Dec = Decimal(0)


class ChargeIn(Model):
    code: Code
    model: Literal["flat", "per_unit", "graduated", "volume", "package", "percentage"]
    description_fr: Text
    description_en: Text
    metric: Code | None = None
    vat_rate_class: Literal["standard", "intermediate", "reduced", "super_reduced"] = "standard"
    amount: Dec | None = None
    unit_price: Dec | None = None
    tiers: list[TierIn] = []
    package_size: Dec | None = None
    free_units: Dec | None = None
    rate: Dec | None = None
    fixed_fee: Dec | None = None
    min_per_transaction: Dec | None = None
    max_per_transaction: Dec | None = None


class PriceVersionIn(Model):
    """A price version of a plan: its charges, effective from a date (never edited later)."""

    effective_from: date
    charges: list[ChargeIn] = Field(min_length=1)


class PlanIn(Model):
    code: Code
    name: Text
    interval: Literal["month", "year"] = "month"
    currency: str
    trial_days: int = Field(0, ge=0, le=365)
    prices: list[PriceVersionIn] = Field(min_length=1)

    _c = field_validator("currency")(_currency)


class SubscriptionIn(Model):
    account: str  # account reference or acc_ public id
    plan: Code
    external_id: ExternalId | None = None
    started_on: date
    trial_days: int | None = Field(None, ge=0, le=365)


class PlanChangeIn(Model):
    plan: Code
    on: date | None = None
    at_period_end: bool = False


class CancelIn(Model):
    on: date | None = None
    at_period_end: bool = True


class UsageEventIn(Model):
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    account: str
    metric: Code
    timestamp: datetime
    value: Dec | None = None
    properties: dict[str, str] = {}

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("a timestamp needs its UTC offset (e.g. 2026-10-01T08:00:00Z)")
        return v


class VoidIn(Model):
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3,
                                             max_length=500)]


def parse(model: type[M], data: Any, record: str = "") -> M:
    """``data`` as ``model``, or :class:`Invalid` naming each wrong field (nothing written)."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [Problem(".".join(str(p) for p in err["loc"]),
                            str(err["msg"]).removeprefix("Value error, "))
                    for err in exc.errors()]
        label = f"{record}: " if record else ""
        raise Invalid(f"{label}{len(problems)} problem(s); nothing was written",
                      problems) from None
