"""Usage aggregated by the database equals the per-event meter's, to the ``Decimal`` exponent.

Hypothesis stores events of every aggregation the database reads (sums of a value or of a
property, counts, maxima, distinct counts, time-weighted sums with and without group keys) with
values of every shape the store may hold (integers up to 20 digits, negative ones, decimals
with leading and trailing zeros, ``5.``, ``-0``, exponents, no value), ties, voided events and
levels carried from before the window; for each account the database aggregates, every
quantity must equal what the domain's aggregator gives from the same rows read one by one
(``store.usage``, as the per-event path reads them); an account the per-event path refuses
(a missing value or property) must not be aggregated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from sealbill.demo.seed import ORGANIZATION
from sealbill.domain.catalog import PlanCatalog
from sealbill.domain.subscriptions import Period, UsageScope
from sealbill.domain.usage import (
    Aggregation,
    Metric,
    UsageError,
    UsageEvent,
    carried_levels,
    make_aggregator,
)
from sealbill.pipeline.billing.usage_aggregates import AggregatePlan, measure_chunk
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.billing.usage import carried_events_raw, event_fields, stream_period_raw
from sealbill.store.schema import accounts

START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
METRICS = [
    Metric("sum", Aggregation.SUM), Metric("sum_n", Aggregation.SUM, "n"),
    Metric("count", Aggregation.COUNT), Metric("max", Aggregation.MAX),
    Metric("users", Aggregation.UNIQUE_COUNT, "u"),
    Metric("level", Aggregation.TIME_WEIGHTED_SUM),
    Metric("level_g", Aggregation.TIME_WEIGHTED_SUM, group_by="g"),
    Metric("level_k", Aggregation.TIME_WEIGHTED_SUM, "k", group_by="g"),
]
BY_CODE = {m.code: m for m in METRICS}
ACCOUNTS = 3

integers = st.integers(-(10 ** 6), 10 ** 6).map(str)
wide = st.integers(-(10 ** 20), 10 ** 20).map(str)
decimals = st.builds(lambda whole, fraction: f"{whole}.{fraction}",
                     st.integers(0, 10 ** 13), st.text("0123456789", max_size=8))
odd = st.sampled_from(["5.", "007", "-0", "1E+2", "-1.5", "0.000", "1e3", " 5", "+5"])
numbers = st.one_of(integers, integers, wide, decimals, odd)
values = st.one_of(st.none(), numbers)
clean_decimals = st.builds(lambda whole, fraction: f"{whole}.{fraction}",
                           st.integers(0, 10 ** 12 - 1), st.text("0123456789", max_size=6))


def _clean(metric: str) -> st.SearchStrategy[str | None]:
    """What the database reads exactly for ``metric`` (account 0 only has such values)."""
    if metric == "count":
        return st.none()
    if metric.startswith("sum"):
        return st.one_of(integers, clean_decimals)
    return st.integers(1 - 10 ** 6, 10 ** 6 - 1).map(str)  # levels: below 10^6


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    found = []
    for n in range(draw(st.integers(0, 40))):
        metric = draw(st.sampled_from([m.code for m in METRICS]))
        account = draw(st.integers(0, ACCOUNTS - 1))
        clean = account == 0
        props: dict[str, str] = {}
        if clean or draw(st.booleans()):
            props["n"] = draw(_clean("sum") if clean else numbers) or "1"
        if clean or draw(st.booleans()):
            props["k"] = draw(_clean("level") if clean else numbers) or "1"
        if clean or draw(st.integers(0, 9)):
            props["u"] = draw(st.sampled_from(["a", "b", "A", "é"]))
        if draw(st.booleans()):
            props["g"] = draw(st.sampled_from(["x", "y", ""]))
        # From 40 days before the window to 10 days after it; a few instants repeat (ties).
        seconds = draw(st.one_of(st.integers(-40 * 86400, 41 * 86400),
                                 st.sampled_from([-1, 0, 3600, 31 * 86400 - 1, 31 * 86400])))
        found.append({
            "account": account, "event_id": f"e{n}",
            "metric_code": metric, "at": START + timedelta(
                seconds=seconds, microseconds=draw(st.sampled_from([0, 0, 1, 999999]))),
            "value": draw(_clean(metric) if clean else st.one_of(values, integers))
            if metric != "count" else None,
            "properties": props or None, "voided": draw(st.integers(0, 9)) == 0})
    return found


@pytest.fixture
def org(any_engine: Engine) -> Iterator[tuple[int, list[int]]]:
    with any_engine.begin() as conn:
        org_id = create_org(conn, dict(ORGANIZATION))
        ids = [int(conn.execute(sa.insert(accounts).values(
            organization_id=org_id, reference=f"A{i}", public_id=f"acc_agg_{i}",
            name=f"Client {i}", address_line1="1 rue A", address_line2="", postcode="75001",
            city="Paris", country="FR", is_business=True, vat_id=None, vat_id_valid=False,
            currency="EUR", locale="fr", is_internal_test=False,
            created_at=datetime.now(UTC)).returning(accounts.c.id)).scalar_one())
            for i in range(ACCOUNTS)]
    yield org_id, ids


def _store(conn: Connection, org_id: int, ids: list[int], rows: list[dict[str, Any]]) -> None:
    """Rows as the store may hold them, the value's text as given (no normalization)."""
    pg = conn.dialect.name == "postgresql"
    statement = sa.text(
        "INSERT INTO usage_events (organization_id, account_id, event_id, metric_code, "
        "occurred_at, value, properties, voided_at, voided_by, void_reason) VALUES (:org, "
        ":account, :event_id, :metric_code, :at, :value, "
        + ("CAST(:properties AS JSON)" if pg else ":properties")
        + ", :voided_at, :voided_by, :reason)")
    for row in rows:
        at = row["at"] if pg else row["at"].replace(tzinfo=None).isoformat(" ", "microseconds")
        conn.execute(statement, {
            "org": org_id, "account": ids[row["account"]], "event_id": row["event_id"],
            "metric_code": row["metric_code"], "at": at, "value": row["value"],
            "properties": None if row["properties"] is None else json.dumps(
                row["properties"], sort_keys=True),
            "voided_at": (at if row["voided"] else None), "voided_by": None,
            "reason": "duplicate" if row["voided"] else None})


def _per_event(conn: Connection, org_id: int, ids: list[int]
               ) -> tuple[dict[int, dict[str, Decimal | str]], dict[int, Any]]:
    """Per account: each metric's quantity by the domain's aggregator fed the rows one by one
    (or the error), and the carried levels (or the error)."""
    events: dict[int, list[UsageEvent]] = {i: [] for i in ids}
    for row in stream_period_raw(conn, org_id, START, END, ids):
        events[row[0]].append(UsageEvent(row[1], "A", row[2], *event_fields(*row[3:])))
    carried: dict[int, list[UsageEvent]] = {i: [] for i in ids}
    weighted = {m.code: m.group_by for m in METRICS
                if m.aggregation is Aggregation.TIME_WEIGHTED_SUM}
    for row in carried_events_raw(conn, org_id, START, ids, weighted):
        carried[row[0]].append(UsageEvent(row[1], "A", row[2], *event_fields(*row[3:])))
    quantities: dict[int, dict[str, Decimal | str]] = {}
    levels: dict[int, Any] = {}
    for account in ids:
        try:
            levels[account] = {
                code: carried_levels(BY_CODE[code], [e for e in carried[account]
                                                     if e.metric_code == code])
                for code in weighted}
        except UsageError as error:
            levels[account] = error
            continue
        quantities[account] = {}
        for metric in METRICS:
            aggregator = make_aggregator(metric, START, END, levels[account].get(
                metric.code, Decimal(0)), END - START)
            try:
                for event in events[account]:
                    if event.metric_code == metric.code:
                        aggregator.add(event)
                quantities[account][metric.code] = aggregator.result()
            except UsageError as error:
                quantities[account][metric.code] = f"error: {error}"
    return quantities, levels


def _compare(conn: Connection, org_id: int, ids: list[int]) -> set[int]:
    plan = AggregatePlan(PlanCatalog([]), BY_CODE, Period(date(2026, 11, 1), date(2026, 12, 1)),
                         Period(date(2026, 10, 1), date(2026, 11, 1)))
    measured = measure_chunk(conn, org_id, plan, {i: frozenset(BY_CODE) for i in ids})
    expected, levels = _per_event(conn, org_id, ids)
    scope = UsageScope(None, START, END, END - START)  # type: ignore[arg-type]
    for account, usage in measured.items():
        if isinstance(levels[account], UsageError):
            continue  # refused before metering, on both paths
        got = usage.quantities(scope, METRICS, levels[account])
        for code, want in expected[account].items():
            assert not isinstance(want, str), (account, code, want)  # refused: not aggregated
            assert got[code].as_tuple() == want.as_tuple(), (account, code, got[code], want)
    return set(measured)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(rows=events())
def test_database_aggregates_equal_the_per_event_meter(
        any_engine: Engine, org: tuple[int, list[int]], rows: list[dict[str, Any]]) -> None:
    org_id, ids = org
    with any_engine.connect() as conn:
        transaction = conn.begin()
        try:
            _store(conn, org_id, ids, rows)
            assert ids[0] in _compare(conn, org_id, ids)  # its values are all read exactly
        finally:
            transaction.rollback()


def test_plain_integer_usage_is_aggregated_by_the_database_and_voided_rows_left_out(
        any_engine: Engine, org: tuple[int, list[int]]) -> None:
    org_id, ids = org
    rows = [{"account": a, "event_id": f"e{a}-{n}-{code}", "metric_code": code,
             "at": START + timedelta(hours=n * 7 + a), "value": str(n * 3 + a),
             "properties": {"u": f"u{n % 4}", "n": f"{n}.5", "k": str(n), "g": "xy"[n % 2]},
             "voided": n == 5}
            for a in range(ACCOUNTS) for n in range(12) for code in BY_CODE]
    rows.append({**rows[0], "event_id": "before", "at": START - timedelta(days=3),
                 "value": "7", "voided": False})  # a level carried in
    with any_engine.connect() as conn:
        transaction = conn.begin()
        try:
            _store(conn, org_id, ids, rows)
            assert _compare(conn, org_id, ids) == set(ids)
            plan = AggregatePlan(PlanCatalog([]), BY_CODE,
                                 Period(date(2026, 11, 1), date(2026, 12, 1)),
                                 Period(date(2026, 10, 1), date(2026, 11, 1)))
            usage = measure_chunk(conn, org_id, plan, {ids[1]: frozenset(BY_CODE)})[ids[1]]
            scope = UsageScope(None, START, END, END - START)  # type: ignore[arg-type]
            got = usage.quantities(scope, METRICS, {})
            assert got["sum"] == sum(n * 3 + 1 for n in range(12) if n != 5)
            assert got["count"] == 11 and got["users"] == 4
            assert str(got["sum_n"]) == str(sum(Decimal(f"{n}.5") for n in range(12)
                                                if n != 5))
        finally:
            transaction.rollback()
