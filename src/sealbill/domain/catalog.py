"""Plans, charges and their prices: what a unit of service costs, exactly.

A :class:`Plan` is one *version* of a priced offer, effective from a date (:class:`PlanCatalog`
picks the version in effect on a day); it holds :class:`Charge` objects of one
:class:`ChargeModel` each. Invariants:

- prices and quantities are ``Decimal`` (floats refused); amounts are computed *exactly* in
  major units — a charge never rounds: rounding happens once per invoice line (``to_minor``);
- ``Charge.amount(q) == sum(c.amount for c in Charge.components(q))``: the components are the
  invoice lines of the charge (one per tier reached, per tier fee, ...);
- tiers are ``(lower, up_to]`` intervals: the first starts at 0, each ``up_to`` is strictly
  greater than the previous one and only the last tier is open (``up_to=None``);
- a usage charge of quantity 0 costs nothing (no tier fee is due before a tier is reached);
- fixed fees (model ``flat``, no metric) are billed in advance; usage charges in arrears;
- the per-transaction part of ``percentage`` (fixed fee, min, max) is rated by
  :mod:`sealbill.domain.rating` from streamed transactions.

>>> tiers = (Tier(Decimal(100), Decimal("0")), Tier(None, Decimal("0.5"), Decimal(2)))
>>> api = Charge("api", ChargeModel.GRADUATED, "Appels API", "API calls",
...              ChargeProperties(tiers=tiers), metric_code="api_calls")
>>> api.amount(Decimal(150))
Decimal('27.0')
>>> [(c.tier, c.quantity, c.unit_price) for c in api.components(Decimal(150))]
[(1, Decimal('100'), Decimal('0')), (2, Decimal('50'), Decimal('0.5')), (2, 1, Decimal('2'))]
>>> api.timing.value
'in_arrears'
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, localcontext
from enum import StrEnum

from sealbill.domain.taxes import VatRateClass

ZERO = Decimal(0)
# Charge arithmetic is exact or fails: an inexact step raises instead of silently rounding.
_EXACT = Context(prec=80, traps=[InvalidOperation, DivisionByZero, Inexact])


class CatalogError(LookupError):
    """A plan code or version that the catalog does not hold."""


class ChargeError(ValueError):
    """A quantity that a charge cannot price (negative, beyond the last tier, ...)."""


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"

    @property
    def months(self) -> int:
        return 1 if self is Interval.MONTH else 12


class ChargeModel(StrEnum):
    FLAT = "flat"
    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"
    PERCENTAGE = "percentage"


class ChargeTiming(StrEnum):
    IN_ADVANCE = "in_advance"
    IN_ARREARS = "in_arrears"


@dataclass(frozen=True, slots=True)
class Tier:
    """Units in ``(previous up_to, up_to]`` cost ``unit_price``; ``flat_fee`` once if reached."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class ChargeProperties:
    """Prices of a charge in major units. ``flat``: ``amount`` per period (and per unit);
    ``per_unit``: ``unit_price``; ``graduated``/``volume``: ``tiers``; ``package``: ``amount``
    per started package of ``package_size`` units beyond ``free_units``; ``percentage``:
    ``rate`` percent of the amounts plus ``fixed_fee`` per transaction, that per-transaction fee
    clamped to ``[min_per_transaction, max_per_transaction]`` when set."""

    amount: Decimal = ZERO
    unit_price: Decimal = ZERO
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal = ZERO
    free_units: Decimal = ZERO
    rate: Decimal = ZERO
    fixed_fee: Decimal = ZERO
    min_per_transaction: Decimal | None = None
    max_per_transaction: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiers", tuple(self.tiers))


# (field, must be positive, may be None) checked per model; other fields must keep defaults.
_TIERED = (ChargeModel.GRADUATED, ChargeModel.VOLUME)


@dataclass(frozen=True, slots=True)
class PriceComponent:
    """One invoiceable part of a charge: ``quantity`` × ``unit_price``, exact. ``kind``: flat,
    unit, tier, tier_fee, package, percentage; ``tier`` is 1-based, with its bounds."""

    kind: str
    quantity: Decimal | int
    unit_price: Decimal
    tier: int | None = None
    lower: Decimal | None = None
    upper: Decimal | None = None

    @property
    def amount(self) -> Decimal:
        with localcontext(_EXACT):
            return self.quantity * self.unit_price


@dataclass(frozen=True, slots=True)
class Charge:
    code: str
    model: ChargeModel
    description_fr: str
    description_en: str
    properties: ChargeProperties = field(default_factory=ChargeProperties)
    metric_code: str | None = None
    vat_rate_class: VatRateClass = VatRateClass.STANDARD
    #: Usage charges: how often their usage is billed in arrears (``None``: every month,
    #: whatever the plan's interval). Fixed fees follow the plan's interval.
    usage_interval: Interval | None = None

    @property
    def usage_cadence(self) -> Interval:
        return self.usage_interval or Interval.MONTH

    @property
    def timing(self) -> ChargeTiming:
        """Fixed fees in advance, usage in arrears."""
        if self.model is ChargeModel.FLAT and self.metric_code is None:
            return ChargeTiming.IN_ADVANCE
        return ChargeTiming.IN_ARREARS

    def description(self, locale: str) -> str:
        """The description in ``locale`` ("en"), French otherwise."""
        return self.description_en if locale == "en" else self.description_fr

    def amount(self, quantity: Decimal) -> Decimal:
        """Exact price of ``quantity`` units in major units (no rounding).

        >>> pkg = Charge("sms", ChargeModel.PACKAGE, "SMS", "SMS",
        ...     ChargeProperties(amount=Decimal(5), package_size=Decimal(100),
        ...                      free_units=Decimal(50)), metric_code="sms")
        >>> pkg.amount(Decimal(50)), pkg.amount(Decimal(51)), pkg.amount(Decimal(251))
        (Decimal('0'), Decimal('5'), Decimal('15'))
        """
        with localcontext(_EXACT):
            return sum((c.amount for c in self.components(quantity)), ZERO)

    def components(self, quantity: Decimal) -> tuple[PriceComponent, ...]:
        """The parts of the price of ``quantity``, one per future invoice line."""
        if not isinstance(quantity, Decimal) or not quantity.is_finite():
            raise ChargeError(f"charge {self.code}: quantity must be a finite Decimal")
        if quantity < 0:
            raise ChargeError(f"charge {self.code}: negative quantity {quantity}")
        p = self.properties
        with localcontext(_EXACT):
            if self.model is ChargeModel.FLAT:
                return (PriceComponent("flat", quantity, p.amount),)
            if quantity == 0:
                return ()
            if self.model is ChargeModel.PER_UNIT:
                return (PriceComponent("unit", quantity, p.unit_price),)
            if self.model in _TIERED:
                return self._tiered(quantity)
            if self.model is ChargeModel.PACKAGE:
                return self._package(quantity)
            return (PriceComponent("percentage", quantity, p.rate.scaleb(-2)),)

    def _tiered(self, quantity: Decimal) -> tuple[PriceComponent, ...]:
        graduated = self.model is ChargeModel.GRADUATED
        parts: list[PriceComponent] = []
        lower = ZERO
        for index, tier in enumerate(self.properties.tiers, start=1):
            falls_here = tier.up_to is None or quantity <= tier.up_to
            if graduated or falls_here:
                top = quantity if tier.up_to is None else min(quantity, tier.up_to)
                units = top - lower if graduated else quantity
                bounds = (index, lower, tier.up_to)
                parts.append(PriceComponent("tier", units, tier.unit_price, *bounds))
                if tier.flat_fee:
                    parts.append(PriceComponent("tier_fee", 1, tier.flat_fee, *bounds))
            if tier.up_to is None or quantity <= tier.up_to:
                return tuple(parts)
            lower = tier.up_to
        raise ChargeError(f"charge {self.code}: quantity {quantity} beyond the last tier")

    def _package(self, quantity: Decimal) -> tuple[PriceComponent, ...]:
        p = self.properties
        whole, rest = divmod(max(ZERO, quantity - p.free_units), p.package_size)
        if (packages := whole + (1 if rest else 0)) == 0:
            return ()
        return (PriceComponent("package", packages, p.amount, upper=p.package_size),)


@dataclass(frozen=True, slots=True)
class Plan:
    code: str
    name: str
    interval: Interval
    currency: str
    version: int
    effective_from: date
    charges: tuple[Charge, ...] = ()
    # The charges split by timing once (rating asks for them on every account), not compared.
    _fixed: tuple[Charge, ...] = field(init=False, repr=False, compare=False)
    _usage: tuple[Charge, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        charges = tuple(self.charges)
        object.__setattr__(self, "charges", charges)
        object.__setattr__(self, "_fixed", tuple(
            c for c in charges if c.timing is ChargeTiming.IN_ADVANCE))
        object.__setattr__(self, "_usage", tuple(
            c for c in charges if c.timing is ChargeTiming.IN_ARREARS))

    @property
    def fixed_charges(self) -> tuple[Charge, ...]:
        return self._fixed

    @property
    def usage_charges(self) -> tuple[Charge, ...]:
        return self._usage


def validate_plan(plan: Plan, metric_codes: Collection[str] | None = None) -> list[str]:
    """Every problem of ``plan``, each naming the charge and the field (rules and examples:
    :func:`sealbill.domain.catalog_checks.plan_problems`); empty means valid."""
    from sealbill.domain.catalog_checks import plan_problems  # it imports this module

    return plan_problems(plan, metric_codes)



class PlanCatalog:
    """All versions of all plans; :meth:`price_for` picks the one in effect on a day.

    >>> v1 = Plan("pro", "Pro", Interval.MONTH, "EUR", 1, date(2024, 1, 1))
    >>> v2 = Plan("pro", "Pro", Interval.MONTH, "EUR", 2, date(2024, 7, 1))
    >>> catalog = PlanCatalog([v2, v1])
    >>> catalog.price_for("pro", date(2024, 6, 30)).version
    1
    >>> catalog.price_for("pro", date(2024, 7, 1)).version
    2
    """

    def __init__(self, plans: Iterable[Plan], unavailable: Mapping[str, str] | None = None
                 ) -> None:
        #: plan code -> why its stored versions cannot be used (an unknown interval...):
        #: only the subscriptions on it are refused, naming the reason.
        self.unavailable = dict(unavailable or {})
        by_code: dict[str, list[Plan]] = {}
        for plan in plans:
            by_code.setdefault(plan.code, []).append(plan)
        self._versions = {
            code: tuple(sorted(vs, key=lambda p: (p.effective_from, p.version)))
            for code, vs in by_code.items()
        }

    def codes(self) -> tuple[str, ...]:
        return tuple(sorted(self._versions))

    def versions(self, plan_code: str) -> tuple[Plan, ...]:
        if plan_code in self.unavailable:
            raise CatalogError(f"plan {plan_code!r}: {self.unavailable[plan_code]}")
        try:
            return self._versions[plan_code]
        except KeyError:
            raise CatalogError(f"unknown plan {plan_code!r}") from None

    def price_for(self, plan_code: str, at: date) -> Plan:
        """The version of ``plan_code`` with the latest ``effective_from`` on or before ``at``."""
        versions = self.versions(plan_code)
        index = bisect.bisect_right([v.effective_from for v in versions], at)
        if index == 0:
            raise CatalogError(f"plan {plan_code!r} has no version in effect on {at}")
        return versions[index - 1]

    def problems(self, metric_codes: Collection[str] | None = None) -> list[str]:
        """Every problem of every version, plus version-ordering problems across versions."""
        problems: list[str] = []
        for code, versions in sorted(self._versions.items()):
            for previous, plan in itertools.pairwise(versions):
                if plan.effective_from == previous.effective_from:
                    problems.append(f"plan {code}: v{previous.version} and v{plan.version} "
                                    f"share effective_from {plan.effective_from}")
                if plan.version <= previous.version:
                    problems.append(f"plan {code}: v{plan.version} is effective after "
                                    f"v{previous.version} but is not a later version")
            for plan in versions:
                problems += validate_plan(plan, metric_codes)
        return problems
