"""The catalog as it enters sealbill: metrics, plans, their price versions, charges and tiers.

Prices are decimals given as strings or integers (a float is refused); codes are lower-case
identifiers; a price version is never edited once stored (a change is a new version).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from sealbill.inputs.models import Code, Dec, Model, Text, known_currency, problem_check
from sealbill.inputs.usage import decimal_problem


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
            problem_check(decimal_problem(value, allows_negative=True))
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
