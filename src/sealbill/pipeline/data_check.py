"""What is already stored and would be refused at the boundary today.

Rows written before the boundary checks (or by a raw ``UPDATE``) may hold text sealbill now
refuses — control, bidirectional or zero-width characters, text not in NFC, a card number or
IBAN — or usage values that cannot be billed (negative where the metric does not allow it,
out of range, missing where the metric reads one). :func:`check_stored_data` reads them all,
writes nothing, and names each finding by table, record and field, so the operator fixes them
before a billing run or a send trips over them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.inputs.secrets import payment_secret_problem
from sealbill.inputs.text import text_problem
from sealbill.inputs.usage import MetricRule
from sealbill.store.billing.catalog import load_metrics
from sealbill.store.schema import accounts, contacts, organizations, usage_events

ACCOUNT_TEXT = ("reference", "name", "address_line1", "address_line2", "postcode", "city",
                "payment_display", "electronic_address")
CONTACT_TEXT = ("email", "name")
ORGANIZATION_TEXT = ("legal_name", "address_line1", "address_line2", "postcode", "city",
                     "legal_info", "sender_name", "dpo_name")
_PAYMENT_FIELDS = frozenset({"payment_display"})


@dataclass(frozen=True)
class Finding:
    table: str
    record: str
    field: str
    problem: str

    def line(self) -> str:
        return f"{self.table} {self.record}: field {self.field!r}: {self.problem}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def stored_text_problem(value: str, *, secrets: bool = True) -> str | None:
    """Why a stored text would be refused at import today, or None."""
    problem = text_problem(value)
    if problem:
        return problem
    if unicodedata.normalize("NFC", value) != value:
        return "not in Unicode normalization form NFC (the same text can compare unequal)"
    return payment_secret_problem(value) if secrets else None


def _texts(conn: Connection, table: sa.Table, org_column: sa.Column[int], org_id: int,
           fields: tuple[str, ...], label: str, name: str) -> Iterator[Finding]:
    rows = conn.execute(sa.select(table.c[label], *[table.c[f] for f in fields])
                        .where(org_column == org_id).order_by(table.c.id))
    for row in rows:
        for field in fields:
            value = row._mapping[field]
            if isinstance(value, str) and (problem := stored_text_problem(value)):
                yield Finding(name, repr(row._mapping[label]), field, problem)


def _usage(conn: Connection, org_id: int) -> Iterator[Finding]:
    rules = {code: MetricRule.of(row) for code, row in load_metrics(conn, org_id).items()}
    # Streamed in batches (an organization may hold millions of events); the option is set on
    # the statement: on the connection it would stay for the caller's next statements.
    rows = conn.execute(
        sa.select(usage_events.c.event_id, usage_events.c.metric_code,
                  sa.type_coerce(usage_events.c.value, sa.String()))
        .where(usage_events.c.organization_id == org_id).order_by(usage_events.c.id)
        .execution_options(yield_per=5000))
    for event_id, metric, raw in rows:
        rule = rules.get(metric, MetricRule())
        record = repr(event_id)
        if problem := text_problem(event_id):
            yield Finding("usage_events", record, "event_id", problem)
        if raw is None:
            if rule.needs_value:
                yield Finding("usage_events", record, "value",
                              f"missing, and metric {metric!r} reads it")
            continue
        try:
            value = Decimal(raw)
        except InvalidOperation:
            yield Finding("usage_events", record, "value", f"not a number: {raw!r}")
            continue
        if problem := rule.value_problem(value):
            yield Finding("usage_events", record, "value", problem)


def stored_outside(conn: Connection, org_id: int, metric: Mapping[str, Any]) -> int:
    """How many stored, not voided, events of ``metric`` (a ``metrics`` row, or the row a
    change would leave: aggregation, field and the new limits) its rule would refuse: what a
    narrower range leaves behind. They stay stored; ``check data`` lists them and an operator
    may void them."""
    rule = MetricRule.of(metric)
    rows = conn.execute(
        sa.select(sa.type_coerce(usage_events.c.value, sa.String()))
        .where(usage_events.c.organization_id == org_id,
               usage_events.c.metric_code == metric["code"],
               usage_events.c.voided_at.is_(None))
        .execution_options(yield_per=5000))
    count = 0
    for (raw,) in rows:
        try:
            bad = rule.needs_value if raw is None else bool(rule.value_problem(Decimal(raw)))
        except InvalidOperation:
            bad = True
        count += bad
    return count


def check_stored_data(conn: Connection, org_id: int) -> list[Finding]:
    """Every finding of the organization's stored data (read only)."""
    findings = list(_texts(conn, organizations, organizations.c.id, org_id, ORGANIZATION_TEXT,
                           "slug", "organization"))
    findings += _texts(conn, accounts, accounts.c.organization_id, org_id, ACCOUNT_TEXT,
                       "reference", "account")
    findings += _texts(conn, contacts, contacts.c.organization_id, org_id, CONTACT_TEXT,
                       "email", "contact")
    findings += _usage(conn, org_id)
    return findings
