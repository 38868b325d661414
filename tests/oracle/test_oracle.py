"""The independent oracle: Hypothesis generates catalogs, subscriptions (plan changes,
cancellations, trials) and usage streams (levels carried from before the month, several
metrics); sealbill bills them through the real pipeline on SQLite (October, then November)
and every November document — its kind, its line amounts, its VAT breakdown, its totals and
the totals of its Factur-X XML — must equal ``tests/oracle/reference.py`` to the cent.

A few hundred examples run in ``make test``; ``make test-deep`` runs many more (marker
``deep``, ``SEALBILL_ORACLE_EXAMPLES``, default 10,000).
"""

from __future__ import annotations

import itertools
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from sealbill.demo.seed import ORGANIZATION
from sealbill.documents.cii import NS, build_cii
from sealbill.domain.catalog import (
    Charge,
    ChargeModel,
    ChargeProperties,
    Interval,
    Plan,
    Tier,
)
from sealbill.domain.usage import UsageEvent
from sealbill.pipeline.billing import bill_period
from sealbill.pipeline.finalize import finalize_run
from sealbill.pipeline.organizations import create_org
from sealbill.pipeline.usage_import import record_usage
from sealbill.store import catalog as catalog_store
from sealbill.store import parties
from sealbill.store.db import create_engine
from sealbill.store.invoices import load_invoice
from sealbill.store.schema import subscriptions
from tests.oracle.reference import (
    RefAccount,
    RefCharge,
    RefEvent,
    RefInvoice,
    RefPlan,
    RefTier,
    reference_invoice,
)

SEPT = datetime(2026, 9, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
MONTH_SECONDS = 31 * 86400
_counter = itertools.count()

money = st.integers(100, 50_000).map(lambda c: Fraction(c, 100))  # 1.00 .. 500.00
unit_price = st.integers(0, 20_000).map(lambda n: Fraction(n, 10_000))  # 0 .. 2.0000


@st.composite
def usage_charge(draw: st.DrawFn, metric: str) -> RefCharge:
    model = draw(st.sampled_from(["unit", "graduated", "volume", "package"]))
    if model == "unit":
        return RefCharge("unit", metric, draw(unit_price))
    if model == "package":
        return RefCharge("package", metric, draw(money), package_size=draw(st.integers(1, 500)),
                         free_units=draw(st.integers(0, 300)))
    bounds = sorted(draw(st.sets(st.integers(1, 3000), min_size=0, max_size=3)))
    ups: list[int | None] = [*bounds, None]
    tiers = tuple(RefTier(up, draw(unit_price),
                          draw(st.sampled_from([Fraction(0), Fraction(0), Fraction(5)])))
                  for up in ups)
    return RefCharge(model, metric, tiers=tiers)


@st.composite
def plan(draw: st.DrawFn, code: str) -> RefPlan:
    charges: list[RefCharge] = []
    if draw(st.booleans()):
        charges.append(RefCharge("fee", price=draw(money)))
    for metric in draw(st.sets(st.sampled_from(["calls", "peak", "gb"]), max_size=2)):
        charges.append(draw(usage_charge(metric)))
    if not charges:
        charges.append(RefCharge("fee", price=draw(money)))
    return RefPlan(code, tuple(charges))


def _events(draw: st.DrawFn, metric: str, start: datetime, seconds: int,
            top: int) -> list[RefEvent]:
    offsets = draw(st.lists(st.integers(0, seconds - 1), unique=True, max_size=6))
    return [RefEvent(metric, start + timedelta(seconds=o), Fraction(draw(st.integers(0, top))))
            for o in offsets]


@st.composite
def account(draw: st.DrawFn, index: int, plan_codes: list[str]) -> RefAccount:
    first = draw(st.sampled_from(plan_codes))
    acc = RefAccount(f"R{index:03d}", draw(st.booleans()), first)
    change_day = None
    if len(plan_codes) > 1 and draw(st.booleans()):
        change_day = draw(st.integers(2, 31))
        acc.change = (date(2026, 10, change_day),
                      draw(st.sampled_from([c for c in plan_codes if c != first])))
    if draw(st.integers(0, 3)) == 0:
        day = draw(st.integers((change_day or 1) + 1, 31)) if (change_day or 1) < 31 else None
        if day is not None:
            acc.cancel = (date(2026, 10, day), draw(st.booleans()))
    elif draw(st.integers(0, 4)) == 0:
        acc.trial_end = date(2026, 11, draw(st.integers(2, 30)))
    acc.events = (_events(draw, "calls", OCT, MONTH_SECONDS, 5000)
                  + _events(draw, "peak", OCT, MONTH_SECONDS, 900)
                  + _events(draw, "gb", SEPT, 61 * 86400, 4000))
    return acc


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, RefPlan], list[RefAccount]]:
    codes = [f"p{i}" for i in range(draw(st.integers(1, 3)))]
    plans = {code: draw(plan(code)) for code in codes}
    accounts = [draw(account(i, codes)) for i in range(1, draw(st.integers(1, 4)) + 1)]
    return plans, accounts


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


def _charge(index: int, ref: RefCharge) -> Charge:
    code = f"c{index}"
    if ref.model == "fee":
        return Charge(code, ChargeModel.FLAT, "Abonnement", "Subscription",
                      ChargeProperties(amount=_decimal(ref.price)))
    if ref.model == "unit":
        props = ChargeProperties(unit_price=_decimal(ref.price))
    elif ref.model == "package":
        props = ChargeProperties(amount=_decimal(ref.price),
                                 package_size=Decimal(ref.package_size),
                                 free_units=Decimal(ref.free_units))
    else:
        props = ChargeProperties(tiers=tuple(
            Tier(None if t.up_to is None else Decimal(t.up_to), _decimal(t.price),
                 _decimal(t.flat)) for t in ref.tiers))
    model = {"unit": ChargeModel.PER_UNIT, "package": ChargeModel.PACKAGE,
             "graduated": ChargeModel.GRADUATED, "volume": ChargeModel.VOLUME}[ref.model]
    return Charge(code, model, f"Usage {code}", f"Usage {code}", props,
                  metric_code=ref.metric)


def _load(url: str, plans: dict[str, RefPlan], accounts: list[RefAccount]) -> tuple[int, dict]:
    engine = create_engine(url)
    at = datetime(2026, 9, 1, tzinfo=UTC)
    with engine.begin() as conn:
        org_id = create_org(conn, {**ORGANIZATION, "slug": "oracle"})
        for code, aggregation in (("calls", "sum"), ("peak", "max"),
                                  ("gb", "time_weighted_sum")):
            catalog_store.add_metric(conn, org_id, code, code, aggregation)
        for code, ref in plans.items():
            catalog_store.add_plan(conn, org_id, Plan(
                code, code, Interval.MONTH, "EUR", 1, date(2020, 1, 1),
                tuple(_charge(i, c) for i, c in enumerate(ref.charges))), at)
        ids = {}
        for acc in accounts:
            ids[acc.reference] = account_id = parties.create_account(
                conn, org_id, reference=acc.reference, name=f"Client {acc.reference}",
                address_line1="1 rue A", postcode="75001", city="Paris",
                country="US" if acc.outside_eu else "FR", is_business=True, currency="EUR",
                locale="fr", vat_id_valid=False, is_internal_test=False)
            sub_id = catalog_store.add_subscription(
                conn, org_id, account_id, f"sub-{acc.reference}", acc.first_plan,
                date(2026, 1, 1), at, trial_ends_on=acc.trial_end)
            if acc.change:
                catalog_store.change_plan(conn, org_id, sub_id, acc.change[1], acc.change[0],
                                          at)
            if acc.cancel:
                catalog_store.cancel(conn, org_id, sub_id, on=acc.cancel[0],
                                     at_period_end=acc.cancel[1])
        assert conn.execute(subscriptions.select()).first() is not None
    events = [UsageEvent(f"{acc.reference}-{e.metric}-{n}", acc.reference, e.metric, e.at,
                         _decimal(e.value))
              for acc in accounts for n, e in enumerate(acc.events)]
    if events:
        record_usage(engine, org_id, events)
    engine.dispose()
    return org_id, ids


def _stored(url: str, org_id: int, run_id: int) -> dict[str, tuple[RefInvoice, bytes]]:
    engine = create_engine(url)
    done = finalize_run(engine, org_id, run_id, issue_date=date(2026, 11, 1))
    found = {}
    with engine.begin() as conn:
        for invoice_id, _ in done:
            inv = load_invoice(conn, org_id, invoice_id)
            vat = tuple(sorted((t.category.value, format(t.rate.normalize(), "f"),
                                t.base_minor, t.tax_minor) for t in inv.tax_subtotals))
            found[inv.account_reference] = (RefInvoice(
                inv.kind.value, tuple(sorted(line.amount_minor for line in inv.lines)), vat,
                inv.total_excl_minor, inv.tax_total_minor, inv.total_incl_minor),
                build_cii(inv))
    engine.dispose()
    return found


def _xml_totals(xml: bytes) -> tuple[str, str, str]:
    root = etree.fromstring(xml)
    sums = root.xpath("//ram:SpecifiedTradeSettlementHeaderMonetarySummation", namespaces=NS)[0]
    get = lambda tag: sums.xpath(f"ram:{tag}/text()", namespaces=NS)[0]  # noqa: E731
    return get("TaxBasisTotalAmount"), get("TaxTotalAmount"), get("GrandTotalAmount")


def check_case(template: Path, workdir: Path, plans: dict[str, RefPlan],
               accounts: list[RefAccount]) -> None:
    # On tmpfs when there is one: each example commits a dozen times, and the VM's fsync
    # dominates otherwise.
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() and os.access(shm, os.W_OK) else workdir
    path = where / f"sealbill-oracle-{os.getpid()}-{next(_counter)}.sqlite"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    try:
        org_id, _ = _load(url, plans, accounts)
        engine = create_engine(url)
        october = bill_period(engine, org_id, "2026-10", actor="oracle", workers=1)
        finalize_run(engine, org_id, october.run_id or 0, issue_date=date(2026, 10, 1))
        november = bill_period(engine, org_id, "2026-11", actor="oracle", workers=1)
        engine.dispose()
        assert november.problems == []
        stored = _stored(url, org_id, november.run_id or 0)
        expected = {acc.reference: reference_invoice(acc, plans) for acc in accounts}
        assert {ref: doc for ref, (doc, _) in stored.items()} == {
            ref: doc for ref, doc in expected.items() if doc is not None}
        for ref, (doc, xml) in stored.items():
            assert _xml_totals(xml) == tuple(
                f"{Decimal(v) / 100:.2f}" for v in (doc.total_excl, doc.total_vat,
                                                     doc.total_incl)), ref
    finally:
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)


_SETTINGS = dict(deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow,
                                        HealthCheck.function_scoped_fixture])


@settings(max_examples=int(os.environ.get("SEALBILL_ORACLE_QUICK", "200")), **_SETTINGS)
@given(cases())
def test_stored_invoices_equal_the_reference_calculator(
        sqlite_template: Path, tmp_path: Path,
        case: tuple[dict[str, RefPlan], list[RefAccount]]) -> None:
    check_case(sqlite_template, tmp_path, *case)


@pytest.mark.deep
@settings(max_examples=int(os.environ.get("SEALBILL_ORACLE_EXAMPLES", "10000")),
          **{**_SETTINGS, "derandomize": False})
@given(cases())
def test_deep_stored_invoices_equal_the_reference_calculator(
        sqlite_template: Path, tmp_path: Path,
        case: tuple[dict[str, RefPlan], list[RefAccount]]) -> None:
    check_case(sqlite_template, tmp_path, *case)
