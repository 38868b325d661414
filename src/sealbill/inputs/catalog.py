"""The catalog as it enters sealbill: metrics, plans, their price versions, charges and tiers.

Prices are decimals given as strings or integers (a float is refused); codes are lower-case
identifiers; a price version is never edited once stored (a change is a new version).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator

from sealbill.inputs.models import Code, Dec, Model, Text, known_currency


class MetricIn(Model):
    code: Code
    name: Text
    aggregation: Literal["sum", "count", "max", "unique_count", "latest", "time_weighted_sum"]
    field: str | None = None


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
    tiers: list[TierIn] = Field(default_factory=list)
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

    _c = field_validator("currency")(known_currency)
