"""Usage events, payload digests, streaming aggregations and row parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbill.domain.usage import (
    Aggregation,
    Metric,
    TimeWeightedSumAggregator,
    UsageError,
    UsageEvent,
    UsageRowError,
    aggregate,
    make_aggregator,
    payload_digest,
    validate_metric,
)
from sealbill.domain.usage_records import parse_usage_record

START = datetime(2024, 4, 1, tzinfo=UTC)
END = datetime(2024, 5, 1, tzinfo=UTC)


def event(n: int, at: datetime, value: str | None = "1", metric: str = "m",
          **props: str) -> UsageEvent:
    return UsageEvent(f"e{n}", "C-1", metric, at, None if value is None else D(value), props)


def day(d: int, hour: int = 0) -> datetime:
    return START + timedelta(days=d - 1, hours=hour)


# --- events and digests ------------------------------------------------------------------------


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(UsageError, match="naive datetime"):
        UsageEvent("e1", "C-1", "m", datetime(2024, 4, 1, 12), D(1))


@given(st.datetimes())
def test_any_naive_datetime_is_refused(moment: datetime) -> None:
    with pytest.raises(UsageError):
        UsageEvent("e1", "C-1", "m", moment)


def test_float_values_are_refused() -> None:
    with pytest.raises(UsageError, match="finite Decimal"):
        UsageEvent("e1", "C-1", "m", START, 1.5)  # type: ignore[arg-type]


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=6), st.randoms())
def test_same_digest_whatever_the_order_of_the_properties(
    props: dict[str, str], rnd: object
) -> None:
    items = list(props.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    a = UsageEvent("a", "C-1", "m", START, D(1), props)
    b = UsageEvent("b", "C-1", "m", START, D(1), dict(items))
    assert payload_digest(a) == payload_digest(b)


def test_digest_ignores_offset_and_trailing_zeros_but_not_the_payload() -> None:
    paris = timezone(timedelta(hours=2))
    base = UsageEvent("1", "C-1", "m", START, D("2.50"), {"k": "v"})
    same = UsageEvent("2", "C-1", "m", START.astimezone(paris), D("2.5"), {"k": "v"})
    assert payload_digest(base) == payload_digest(same)
    others = [
        UsageEvent("1", "C-2", "m", START, D("2.50"), {"k": "v"}),
        UsageEvent("1", "C-1", "n", START, D("2.50"), {"k": "v"}),
        UsageEvent("1", "C-1", "m", START + timedelta(microseconds=1), D("2.50"), {"k": "v"}),
        UsageEvent("1", "C-1", "m", START, D("2.51"), {"k": "v"}),
        UsageEvent("1", "C-1", "m", START, None, {"k": "v"}),
        UsageEvent("1", "C-1", "m", START, D("2.50"), {"k": "w"}),
    ]
    digests = {payload_digest(e) for e in others}
    assert payload_digest(base) not in digests
    assert len(digests) == len(others)


# --- aggregations ------------------------------------------------------------------------------


def test_sum_adds_the_values_exactly() -> None:
    events = [event(1, day(1), "0.1"), event(2, day(2), "0.2"), event(3, day(3), "0.000012")]
    assert aggregate(Metric("m", Aggregation.SUM), events, START, END) == D("0.300012")


def test_sum_can_read_a_numeric_property() -> None:
    events = [event(1, day(1), None, amount="10.5"), event(2, day(2), None, amount="4.5")]
    assert aggregate(Metric("m", Aggregation.SUM, "amount"), events, START, END) == D(15)


def test_count_counts_events_without_reading_values() -> None:
    events = [event(n, day(n), None) for n in range(1, 6)]
    assert aggregate(Metric("m", Aggregation.COUNT), events, START, END) == 5


def test_max_keeps_the_greatest_value() -> None:
    events = [event(1, day(1), "3"), event(2, day(2), "11"), event(3, day(3), "-4")]
    assert aggregate(Metric("m", Aggregation.MAX), events, START, END) == 11
    assert aggregate(Metric("m", Aggregation.MAX), [], START, END) == 0


def test_unique_count_counts_distinct_property_values() -> None:
    events = [event(n, day(n), None, user=u) for n, u in enumerate("abcab", start=1)]
    assert aggregate(Metric("m", Aggregation.UNIQUE_COUNT, "user"), events, START, END) == 3


def test_unique_count_refuses_events_without_the_property() -> None:
    with pytest.raises(UsageError, match=r"properties\.user"):
        aggregate(Metric("m", Aggregation.UNIQUE_COUNT, "user"), [event(1, day(1))], START, END)


def test_latest_keeps_the_value_of_the_latest_event_whatever_the_feed_order() -> None:
    events = [event(2, day(9), "20"), event(1, day(3), "10"), event(3, day(5), "30")]
    assert aggregate(Metric("m", Aggregation.LATEST), events, START, END) == 20


def test_latest_breaks_timestamp_ties_by_event_id() -> None:
    a, b = event(1, day(2), "1"), event(2, day(2), "2")
    metric = Metric("m", Aggregation.LATEST)
    assert aggregate(metric, [a, b], START, END) == aggregate(metric, [b, a], START, END) == 2


def test_time_weighted_sum_is_the_average_level_over_the_period() -> None:
    # 30-day window: 0 for 9 days, 10 for 10 days, 40 for 11 days
    events = [event(1, day(10), "10"), event(2, day(20), "40")]
    result = aggregate(Metric("m", Aggregation.TIME_WEIGHTED_SUM), events, START, END)
    assert result == (D(10) * 10 + D(40) * 11) / 30


def test_time_weighted_sum_starts_from_the_carried_over_value() -> None:
    metric = Metric("m", Aggregation.TIME_WEIGHTED_SUM)
    assert aggregate(metric, [], START, END, initial_value=D(7)) == 7
    aggregator = make_aggregator(metric, START, END, D(7))
    aggregator.add(event(1, day(16), "1"))
    assert aggregator.result() == D(4)  # 7 for 15 days, 1 for 15 days
    assert isinstance(aggregator, TimeWeightedSumAggregator)
    assert aggregator.current_value == 1


def test_time_weighted_sum_refuses_events_out_of_order() -> None:
    aggregator = make_aggregator(Metric("m", Aggregation.TIME_WEIGHTED_SUM), START, END)
    aggregator.add(event(1, day(5), "1"))
    with pytest.raises(UsageError, match="timestamp order"):
        aggregator.add(event(2, day(4), "1"))


def test_time_weighted_sum_is_not_fooled_by_daylight_saving_time() -> None:
    # 31 March 2024: Paris moves from +01:00 to +02:00; the day holds 23 real hours, although
    # subtracting two datetimes of the same zone gives 24 wall-clock hours
    paris = ZoneInfo("Europe/Paris")
    start, end = datetime(2024, 3, 31, tzinfo=paris), datetime(2024, 4, 1, tzinfo=paris)
    at = datetime(2024, 3, 31, 12, tzinfo=paris)  # 10:00 UTC, 11 real hours after start
    result = aggregate(Metric("m", Aggregation.TIME_WEIGHTED_SUM), [event(1, at, "23")],
                       start, end)
    assert result == 12


def test_aggregators_refuse_other_metrics_and_events_outside_the_window() -> None:
    aggregator = make_aggregator(Metric("m", Aggregation.SUM), START, END)
    with pytest.raises(UsageError, match="fed to aggregator"):
        aggregator.add(event(1, day(1), metric="other"))
    with pytest.raises(UsageError, match="outside"):
        aggregator.add(event(2, END))
    with pytest.raises(UsageError, match="outside"):
        aggregator.add(event(3, START - timedelta(microseconds=1)))


def test_invalid_metrics_are_reported_and_refused() -> None:
    metric = Metric("", Aggregation.UNIQUE_COUNT)
    assert len(validate_metric(metric)) == 2
    with pytest.raises(UsageError, match="unique_count needs"):
        make_aggregator(metric, START, END)


offsets = st.integers(0, 30 * 86400 - 1)
levels = st.integers(-1000, 1000).map(lambda n: D(n).scaleb(-1))


@given(st.lists(st.tuples(offsets, levels), max_size=12), levels)
def test_time_weighted_sum_matches_an_exact_integration(
    steps: list[tuple[int, D]], initial: D
) -> None:
    steps.sort(key=lambda s: s[0])
    events = [event(n, START + timedelta(seconds=s), str(v)) for n, (s, v) in enumerate(steps)]
    result = aggregate(Metric("m", Aggregation.TIME_WEIGHTED_SUM), events, START, END, initial)
    period = 30 * 86400
    times = [0] + [s for s, _ in steps] + [period]
    values = [initial] + [v for _, v in steps]
    exact = sum((Fraction(v) * (t1 - t0) for v, t0, t1 in zip(values, times, times[1:],
                                                              strict=False)), Fraction(0))
    exact /= period
    assert abs(Fraction(result) - exact) <= Fraction(1, 10**20)


@given(st.lists(st.tuples(offsets, levels, st.sampled_from("abcd")), max_size=15), st.randoms())
def test_order_independent_aggregations_ignore_the_feed_order(
    rows: list[tuple[int, D, str]], rnd: object
) -> None:
    events = [event(n, START + timedelta(seconds=s), str(v), user=u)
              for n, (s, v, u) in enumerate(rows)]
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for metric in (Metric("m", Aggregation.SUM), Metric("m", Aggregation.COUNT),
                   Metric("m", Aggregation.MAX), Metric("m", Aggregation.LATEST),
                   Metric("m", Aggregation.UNIQUE_COUNT, "user")):
        assert aggregate(metric, events, START, END) == aggregate(metric, shuffled, START, END)
    assert aggregate(Metric("m", Aggregation.SUM), events, START, END) == sum(
        (v for _, v, _ in rows), D(0))


# --- row parsing -------------------------------------------------------------------------------


def test_a_csv_row_becomes_an_event() -> None:
    row = {"event_id": " e1 ", "account_reference": "C-1", "metric_code": "api",
           "timestamp": "2024-04-01T10:00:00Z", "value": "0.000012",
           "properties.region": "eu"}
    parsed = parse_usage_record(row, 2)
    assert parsed == UsageEvent("e1", "C-1", "api", datetime(2024, 4, 1, 10, tzinfo=UTC),
                                D("0.000012"), {"region": "eu"})


def test_a_jsonl_row_with_a_properties_object_becomes_an_event() -> None:
    row = {"event_id": "e1", "account_reference": "C-1", "metric_code": "api",
           "timestamp": "2024-04-01T12:00:00+02:00", "value": None,
           "properties": {"amount": D("12.50"), "count": 3}}
    parsed = parse_usage_record(row, 1)
    assert parsed.value is None
    assert parsed.properties == {"amount": "12.50", "count": "3"}


def test_a_bad_row_reports_its_line_and_every_faulty_field() -> None:
    row = {"event_id": "", "account_reference": "C-1", "metric_code": "api",
           "timestamp": "2024-04-01 10:00", "value": 1.5, "properties.flag": True,
           "colour": "red"}
    with pytest.raises(UsageRowError) as caught:
        parse_usage_record(row, 42)
    error = caught.value
    assert error.line_no == 42
    assert {name for name, _ in error.problems} == {
        "colour", "event_id", "timestamp", "value", "properties.flag"}
    assert str(error).startswith("line 42: ")


@pytest.mark.parametrize("stamp", ["2024-04-01", "2024-04-01T10:00:00", "yesterday", ""])
def test_timestamps_without_an_offset_are_refused(stamp: str) -> None:
    row = {"event_id": "e", "account_reference": "C", "metric_code": "m", "timestamp": stamp}
    with pytest.raises(UsageRowError, match="timestamp"):
        parse_usage_record(row, 1)
