"""Usage events as they enter sealbill: the limits every stored event respects.

The domain's parser (:func:`sealbill.domain.usage_records.parse_usage_record`) turns a row into a
:class:`UsageEvent`; :func:`event_problems` then checks what an event must satisfy to be
billable later, so that a row accepted today can never block a billing run:

- identifiers are 1–128 (event id) or 1–64 characters, without control, bidirectional or
  zero-width characters (an event id is a client's opaque key: it is not normalized);
- at most 32 properties, names of 1–64 and values of at most 200 such characters;
- a value is a finite decimal with at most 15 integer digits and 12 decimal places
  (``1e400`` and 38-digit numbers are refused), not negative unless the metric allows it,
  within the metric's declared range (``min_value`` ≤ value ≤ ``max_value``) and precision
  (``decimal_places``; 0 for an integer-only metric), and present when the metric reads it
  (``sum``, ``max``, ``latest``, ``time_weighted_sum`` without a property); a metric that
  reads a property needs it, as such a decimal.

:class:`UsageIn` is the same check as a Pydantic model, for one event built by a caller;
:class:`UsageEventIn` is one event recorded through the CLI or the API (``account`` and
``metric`` are the file's ``account_reference`` and ``metric_code``), checked with the same
limits, then — once its metric is known — with :func:`rule_problems`, as a file's row is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from sealbill.domain.money import MoneyError, parse_decimal
from sealbill.domain.usage import UsageEvent, UsageRowError
from sealbill.domain.usage_records import parse_usage_record
from sealbill.inputs.fields import TEXT_ONLY, checked
from sealbill.inputs.models import Code, Dec, Model
from sealbill.inputs.text import text_problem

MAX_INTEGER_DIGITS = 15
MAX_DECIMAL_PLACES = 12
MAX_PROPERTIES = 32
ID_LIMITS = {"event_id": 128, "account_reference": 64, "metric_code": 64}
_READS_NO_VALUE = frozenset({"count", "unique_count"})


@dataclass(frozen=True)
class MetricRule:
    """What a metric needs from an event: ``min_value``/``max_value`` bound a value
    (inclusive, ``None`` for no bound), ``decimal_places`` caps its precision (``None``: the
    sealbill-wide 12; 0: integers only)."""

    needs_value: bool = False
    numeric_property: str | None = None
    allows_negative: bool = False
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    decimal_places: int | None = None

    @classmethod
    def of(cls, metric: Mapping[str, Any]) -> MetricRule:
        """The rule of a ``metrics`` row (aggregation, field, allows_negative, min_value,
        max_value, decimal_places)."""
        aggregation, field = str(metric["aggregation"]), metric.get("field")
        reads_property = bool(field) and aggregation != "unique_count"
        low, high, places = (metric.get("min_value"), metric.get("max_value"),
                             metric.get("decimal_places"))
        return cls(needs_value=aggregation not in _READS_NO_VALUE and not field,
                   numeric_property=str(field) if reads_property else None,
                   allows_negative=bool(metric.get("allows_negative", False)),
                   min_value=None if low is None else Decimal(str(low)),
                   max_value=None if high is None else Decimal(str(high)),
                   decimal_places=None if places is None else int(places))

    @property
    def bounded(self) -> bool:
        """Whether the metric declares a range or a precision of its own."""
        return not (self.min_value is None and self.max_value is None
                    and self.decimal_places is None)

    def value_problem(self, value: Decimal) -> str | None:
        """Why ``value`` cannot be a quantity of this metric, or None."""
        problem = decimal_problem(value, allows_negative=self.allows_negative)
        if problem is not None or not self.bounded:
            return problem
        if self.min_value is not None and value < self.min_value:
            return f"below this metric's minimum {self.min_value}, got {value}"
        if self.max_value is not None and value > self.max_value:
            return f"above this metric's maximum {self.max_value}, got {value}"
        places = self.decimal_places
        if places is not None and value != round(value, places):
            return ("an integer (this metric counts whole units)" if places == 0 else
                    f"at most {places} decimal places for this metric") + f", got {value}"
        return None


ANY_METRIC = MetricRule()


def decimal_problem(value: Decimal, *, allows_negative: bool = False) -> str | None:
    """Why ``value`` cannot be a usage quantity, or None."""
    if not value.is_finite():
        return f"not a finite number: {value}"
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = len(digits) + exponent if digits != (0,) else 1
    if significant > MAX_INTEGER_DIGITS:
        return (f"at most {MAX_INTEGER_DIGITS} digits before the decimal point, got a number "
                f"of {significant} digits")
    if exponent < -MAX_DECIMAL_PLACES and value != round(value, MAX_DECIMAL_PLACES):
        return f"at most {MAX_DECIMAL_PLACES} decimal places"
    if sign and value != 0 and not allows_negative:
        return "negative, and this metric does not allow negative values"
    return None


def _text_problem(field: str, text: str, limit: int, *, empty_ok: bool = False
                  ) -> tuple[str, str] | None:
    if len(text) > limit:
        return field, f"at most {limit} characters, got {len(text)}"
    if not empty_ok and not text:
        return field, "required, a non-empty string"
    problem = text_problem(text)
    return (field, problem) if problem else None


def event_problems(event: UsageEvent, rule: MetricRule = ANY_METRIC) -> list[tuple[str, str]]:
    """Every (field, problem) of a parsed event against the limits and its metric's rule."""
    problems = [found for name, limit in ID_LIMITS.items()
                if (found := _text_problem(name, getattr(event, name), limit))]
    properties = dict(event.properties or {})
    if len(properties) > MAX_PROPERTIES:
        problems.append(("properties", f"at most {MAX_PROPERTIES} properties, got "
                                       f"{len(properties)}"))
    else:
        for key, text in properties.items():
            problems += [found for found in (
                _text_problem(f"properties.{key[:64]}", key, 64),
                _text_problem(f"properties.{key[:64]}", text, 200, empty_ok=True)) if found]
    return problems + rule_problems(event.metric_code, event.value, properties, rule)


def rule_problems(metric_code: str, value: Decimal | None, properties: Mapping[str, str],
                  rule: MetricRule = ANY_METRIC) -> list[tuple[str, str]]:
    """Every (field, problem) of an event's value and properties against its metric's rule."""
    problems = []
    if value is None:
        if rule.needs_value:
            problems.append(("value", f"required by metric {metric_code!r}"))
    elif problem := rule.value_problem(value):
        problems.append(("value", problem))
    name = rule.numeric_property
    if name is not None:
        raw = properties.get(name)
        if raw is None:
            problems.append((f"properties.{name}", f"required by metric {metric_code!r}"))
        else:
            try:
                number = parse_decimal(raw, field=f"properties.{name}")
            except MoneyError as exc:
                problems.append((f"properties.{name}", str(exc).split(": ", 1)[-1]))
            else:
                if why := rule.value_problem(number):
                    problems.append((f"properties.{name}", why))
    return problems


def parse_event(row: Mapping[str, Any], line_no: int, rule: MetricRule = ANY_METRIC
                ) -> UsageEvent:
    """The event of a row, or :class:`UsageRowError` naming every faulty field."""
    event = parse_usage_record(row, line_no)
    problems = event_problems(event, rule)
    if problems:
        raise UsageRowError(line_no, problems)
    return event


class UsageIn(BaseModel):
    """One usage event from a caller: ``UsageIn.model_validate({...}).event``."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    event: UsageEvent

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError("expected an object with event_id, account_reference, "
                             "metric_code, timestamp, value, properties")
        if "event" in data and isinstance(data["event"], UsageEvent):
            event = data["event"]
            problems = event_problems(event)
            if problems:
                raise ValueError("; ".join(f"{f}: {m}" for f, m in problems))
            return data
        try:
            return {"event": parse_event(data, 1)}
        except UsageRowError as exc:
            raise ValueError("; ".join(f"{f}: {m}" for f, m in exc.problems)) from None


def _limited(field: str, limit: int, *, empty_ok: bool = False) -> AfterValidator:
    def check(text: str) -> str:
        if found := _text_problem(field, text, limit, empty_ok=empty_ok):
            raise ValueError(found[1])
        return text
    return AfterValidator(check)


def _some_properties(value: Any) -> Any:
    if isinstance(value, Mapping) and len(value) > MAX_PROPERTIES:
        raise ValueError(f"at most {MAX_PROPERTIES} properties, got {len(value)}")
    return value


def _usage_value(value: Decimal | None) -> Decimal | None:
    # The sign and presence depend on the metric: rule_problems, once it is known.
    if value is not None and (problem := decimal_problem(value, allows_negative=True)):
        raise ValueError(problem)
    return value


class UsageEventIn(Model):
    """One usage event recorded through the CLI or the API, with the limits of a file's row."""

    event_id: Annotated[str, TEXT_ONLY, _limited("event_id", ID_LIMITS["event_id"])]
    account: Annotated[str, TEXT_ONLY, _limited("account", ID_LIMITS["account_reference"])]
    metric: Code
    timestamp: datetime
    value: Dec | None = None
    properties: dict[Annotated[str, _limited("properties", 64)],
                     Annotated[str, _limited("properties", 200, empty_ok=True)]] = Field(
        default_factory=dict)

    _value = field_validator("value")(_usage_value)
    _count = field_validator("properties", mode="before")(_some_properties)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("a timestamp needs its UTC offset (e.g. 2026-10-01T08:00:00Z)")
        return v


class VoidIn(Model):
    """Voiding a usage event: the reason, kept with it."""

    reason: Annotated[str, TEXT_ONLY, StringConstraints(strip_whitespace=True, min_length=3,
                                                        max_length=500),
                      checked(500, free_text=True)]
