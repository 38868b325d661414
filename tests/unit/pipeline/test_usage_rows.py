"""The fast path of the usage import stores exactly what the domain's careful path stores."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sealbill.pipeline.billing.usage_rows import Batch, RowParser, fast_utc_text
from sealbill.store.billing.usage_ingest import utc_text

ACCOUNTS = {"A1": 1, "A2": 2, " A3": 3}
PARSER = RowParser(ACCOUNTS, {"api_calls", "seats"})


class _Exact(json.JSONEncoder):
    """Decimals as JSON numbers written from their text (what a client may send)."""

    def encode(self, o: Any) -> str:
        return super().encode(o).replace('"<<', "").replace('>>"', "")

    def default(self, o: Any) -> Any:
        if isinstance(o, Decimal):
            return f"<<{o}>>"
        return super().default(o)


def careful(line: str) -> tuple[Any, list[str]]:
    batch = Batch(7, [line])
    row = PARSER.careful(7, line, batch)
    return row, [problem for _, _, problem in batch.bad]


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))
moments = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.one_of(st.just(UTC), offsets))


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    moment = draw(moments)
    text = moment.isoformat(sep=draw(st.sampled_from("T t")),
                            timespec=draw(st.sampled_from(
                                ["auto", "seconds", "milliseconds", "microseconds", "minutes"])))
    if draw(st.booleans()) and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    if draw(st.booleans()):
        text = text.replace(draw(st.sampled_from(["+00:00", "T", "-", ":", "."])),
                            draw(st.sampled_from(["", " ", "-00:00", "+0000", "Z"])), 1)
    return draw(st.sampled_from([text, f" {text}", text.replace("T", "T", 1)]))


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 7).flatmap(lambda k: bad if k == 7 else good)


odd_texts = st.one_of(st.sampled_from(["", " ", "nope", "é😀", "x\u2028y", "tab\tin"]),
                      st.text(max_size=6), st.integers(), st.none())
values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["", " ", "007", "0", "-0", "1_000", " 12 ", "1e3", "NaN", "Infinity", "1,5",
                     "12", "١٢", "0.000012", "+5", ".5", "5."]),
    st.lists(st.integers(), max_size=1))
property_values = mostly(st.text(max_size=4), st.one_of(
    st.integers(), st.booleans(), st.none(), st.decimals(allow_nan=False, allow_infinity=False)))


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": draw(mostly(st.text(min_size=1, max_size=8), odd_texts)),
        "account_reference": draw(mostly(st.sampled_from(["A1", "A2", " A3", "A1 "]), odd_texts)),
        "metric_code": draw(mostly(st.sampled_from(["api_calls", " seats"]), odd_texts)),
        "timestamp": draw(mostly(timestamps(), odd_texts)),
        "value": draw(mostly(st.none() | st.integers() | st.decimals(
            allow_nan=False, allow_infinity=False) | st.decimals(
            allow_nan=False, allow_infinity=False).map(str), values)),
        "properties": draw(mostly(st.none() | st.dictionaries(
            st.text(max_size=4), property_values, max_size=3), st.just("x")))}
    for name in draw(mostly(st.just(set()), st.sets(
            st.sampled_from([*row, "properties.region", "colour"]), max_size=1))):
        if name in row:
            del row[name]
        else:
            row[name] = "eu"
    return row


@settings(max_examples=1500)
@given(rows())
@example({"event_id": "e1", "account_reference": "A1", "metric_code": "api_calls",
          "timestamp": "2026-10-01T10:00:00+02:00", "value": "3"})
@example({"event_id": "e1", "account_reference": "A1", "metric_code": "api_calls",
          "timestamp": "2026-10-01T10:00:00", "value": "3"})
@example({"event_id": "e1", "account_reference": "A1", "metric_code": "api_calls",
          "timestamp": "2026-10-01T10:00:00.12345Z", "value": "3"})
@example({"event_id": "e1", "account_reference": "A1", "metric_code": "api_calls",
          "timestamp": "2026-W40-1T10:00:00+00:00", "value": Decimal("1.50")})
def test_a_row_the_fast_path_takes_is_stored_as_the_careful_path_stores_it(
        row: dict[str, Any]) -> None:
    line = json.dumps(row, cls=_Exact, ensure_ascii=bool(len(row) % 2)) + "\n"
    fast = PARSER.fast(line)
    if fast is not None:
        assert careful(line) == (fast, [])


def test_the_usual_shapes_take_the_fast_path() -> None:
    base = {"event_id": "e1", "account_reference": "A1", "metric_code": "api_calls"}
    for stamp, value, props in [
        ("2026-10-01T10:00:00+00:00", "12", None),
        ("2026-10-01T10:00:00Z", 12, {}),
        ("2026-10-01T10:00:00.250000Z", Decimal("0.000012"), {"region": "eu"}),
        ("2026-10-01T12:00:00+02:00", "1.50", {"b": "2", "a": "Zoë"}),
        ("2026-10-01T10:00:00-05:00", None, None),
    ]:
        line = json.dumps({**base, "timestamp": stamp, "value": value, "properties": props},
                          cls=_Exact)
        fast = PARSER.fast(line)
        assert fast is not None and careful(line) == (fast, [])


def test_the_fast_path_leaves_every_problem_to_the_careful_path() -> None:
    batch = PARSER.parse(1, [
        '{"event_id": "e1", "account_reference": "A1", "metric_code": "api_calls", '
        '"timestamp": "2026-10-01T10:00:00", "value": 1.5, "colour": "red"}\n',
        "\n",
        '{"event_id": "e2", "account_reference": "A9", "metric_code": "api_calls", '
        '"timestamp": "2026-10-01T10:00:00Z", "value": true}\n',
        '{"event_id": "e3", "account_reference": "A1", "metric_code": "api_calls", '
        '"timestamp": "2026-10-01T10:00:00Z", "value": 1.5}\n',
        "not json\n",
        '{"event_id": "e4", "account_reference": "A2", "metric_code": "seats", '
        '"timestamp": "2026-10-01T10:00:00Z"}\n',
    ])
    problems = [problem for _, _, problem in batch.bad]
    assert problems[0].startswith("line 1: ") and "colour" in problems[0]
    assert "timestamp" in problems[0]
    assert problems[1].startswith("line 3: value")
    assert problems[2].startswith("line 5: not JSON")
    assert batch.read == 5  # the blank line is not a row
    assert [batch.origin(i)[0] for i in range(len(batch.rows))] == [4, 6]
    assert batch.origin(1)[1].startswith('{"event_id": "e4"')
    assert batch.rows[0][4] == "1.5"  # a JSON number kept exact, never a float


@settings(max_examples=500)
@given(moments, st.sampled_from(["auto", "seconds", "microseconds"]), st.booleans())
def test_utc_text_by_slicing_equals_the_conversion(moment: datetime, spec: str,
                                                   zulu: bool) -> None:
    text = moment.isoformat(timespec=spec)
    if zulu:
        text = text.replace("+00:00", "Z")
    assert fast_utc_text(text) == utc_text(datetime.fromisoformat(text))


@settings(max_examples=300)
@given(st.lists(rows(), min_size=1, max_size=5))
def test_a_batch_decoded_at_once_stores_what_its_events_parsed_one_by_one_store(
        events: list[dict[str, Any]]) -> None:
    """The API's one-call decode of a JSON array (``parse_array``) either declines (then the
    events are parsed one by one, naming the bad ones) or gives exactly their rows."""
    body = json.dumps(events, cls=_Exact, ensure_ascii=bool(len(events) % 2))
    at_once = PARSER.parse_array(body.encode())
    one_by_one = PARSER.parse(0, [json.dumps(e, cls=_Exact) for e in events])
    if at_once is not None:
        assert (at_once, one_by_one.bad) == (one_by_one.rows, [])


LONE_SURROGATES = ["\\ud800", "\\udc00", "\\uDBFF", "\\ud83d x"]


@st.composite
def lines(draw: st.DrawFn) -> str:
    """A JSONL line of a generated row: escaped or not (``ensure_ascii`` writes ``\\uXXXX``,
    surrogate pairs included), names padded with spaces, now and then a lone surrogate escape
    spliced into a field (JSON can say it, no database stores it)."""
    row = draw(rows())
    for name in ("account_reference", "metric_code"):
        if isinstance(row.get(name), str) and draw(st.integers(0, 5)) == 0:
            row[name] = draw(st.sampled_from([" ", "  ", "\t"])) + row[name] + " "
    line = json.dumps(row, cls=_Exact, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 7)) == 0 and '"event_id": "' in line:
        line = line.replace('"event_id": "', '"event_id": "' + draw(
            st.sampled_from(LONE_SURROGATES)), 1)
    return line + "\n"


@settings(max_examples=1500)
@given(lines())
@example('{"event_id": "e1", "account_reference": " A1 ", "metric_code": "api_calls", '
         '"timestamp": "2026-10-01T10:00:00Z", "value": "3"}\n')
@example('{"event_id": "e1", "account_reference": "A1", "metric_code": "\\u0061pi_calls", '
         '"timestamp": "2026-10-01T10:00:00Z", "value": "3"}\n')
@example('{"event_id": "e\\ud800", "account_reference": "A1", "metric_code": "api_calls", '
         '"timestamp": "2026-10-01T10:00:00Z", "value": "3"}\n')
@example('{"event_id": "e1", "account_reference": " A3", "metric_code": "seats", '
         '"timestamp": "2026-10-01T10:00:00Z", "value": "3"}\n')
def test_a_line_parsed_gives_the_careful_paths_row_or_its_problem(line: str) -> None:
    """Whatever path a line takes, :meth:`RowParser.parse` stores the row and names the problem
    the careful path alone (the domain's parser, unchanged by the fast path's shortcuts: names
    looked up as written, the backslash test before the surrogate search) stores and names."""
    batch = PARSER.parse(7, [line])
    row, problems = careful(line)
    assert (batch.rows, [problem for _, _, problem in batch.bad]) == (
        [] if row is None else [row], problems)


def test_names_with_spaces_around_take_the_careful_path_and_are_stripped() -> None:
    line = ('{"event_id": " e1 ", "account_reference": " A1 ", "metric_code": "api_calls ", '
            '"timestamp": "2026-10-01T10:00:00Z", "value": "3"}\n')
    assert PARSER.fast(line) is None  # not looked up as written
    assert PARSER.parse(1, [line]).rows == [
        (1, "e1", "api_calls", "2026-10-01 10:00:00.000000", "3", None)]
    # A reference stored with spaces around it can never match (names are stripped first).
    spaced = line.replace('" A1 "', '" A3"')
    assert [problem for _, _, problem in PARSER.parse(1, [spaced]).bad] == [
        "line 1: account_reference: unknown account 'A3'"]
