"""The independent oracle: Hypothesis generates catalogs (monthly and yearly plans, every charge
model, usage billed monthly or yearly), subscriptions (mid-month starts, trials, upgrades,
downgrades, cancellations), usage streams (levels carried from long before, group keys, late
events), buyers of every VAT kind (France, EU business, EU consumers under OSS, outside the
EU), currencies (EUR, USD, JPY with 0 decimals, KWD rounded to 0.01) and customer credit;
sealbill bills them through the real pipeline on SQLite (October then November 2026) and every
document of both runs — kind, lines (amount, VAT, period), VAT breakdown, totals, paid amount,
BT-111, OSS country, and the same amounts in its Factur-X XML, parsed — must equal the
reference calculator's (``reference*.py``) to the minor unit; the accounts it reports as not
billed must be the ones the reference leaves unbilled.

300 examples run in ``make test``; ``make test-deep`` runs 10,000 (marker ``deep``,
``SEALBILL_ORACLE_EXAMPLES`` to change it).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.engine import Engine

from sealbill.store.db import create_engine
from tests.oracle.cases import cases
from tests.oracle.load import load, run, xml_facts
from tests.oracle.reference_run import RefCase, RefDocument, reference_runs
from tests.oracle.reference_tax import text

_counter = itertools.count()


def expected_xml(doc: RefDocument, currency: str) -> dict[str, Any]:
    """The XML facts the reference document implies (``load.xml_facts``)."""
    amount = lambda minor: text(minor, currency)  # noqa: E731
    return {
        "type": "380" if doc.kind == "invoice" else "381",
        "currency": currency, "tax_currency": None if currency == "EUR" else "EUR",
        "taxes": sorted((c, "-" if c == "O" else r, amount(b), amount(t))
                        for c, r, b, t in doc.vat),
        "lines": sorted((amount(a), c) for a, c, *_ in doc.lines),
        "totals": {"LineTotalAmount": [amount(doc.total_excl)],
                   "TaxBasisTotalAmount": [amount(doc.total_excl)],
                   "GrandTotalAmount": [amount(doc.total_incl)],
                   "TotalPrepaidAmount": [amount(doc.prepaid)] if doc.prepaid else [],
                   "DuePayableAmount": [amount(doc.total_incl - doc.prepaid)]},
        "tax_totals": sorted([(currency, amount(doc.total_vat))] + (
            [] if currency == "EUR" else [("EUR", text(doc.vat_eur or 0, "EUR"))])),
    }


@pytest.fixture
def oracle_engine(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:
    """One database for all the examples of a test, each example in an organization of its
    own: the statement caches stay warm (a fresh engine per example costs twice the time).
    On tmpfs when there is one: each example commits a few dozen times."""
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    path = where / f"sealbill-oracle-{os.getpid()}-{next(_counter)}.sqlite"
    shutil.copyfile(sqlite_template, path)
    engine = create_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def check_case(engine: Engine, case: RefCase) -> None:
    org_id = load(engine, case, f"oracle-{next(_counter)}")
    for index, expected in enumerate(reference_runs(case)):
        problems, stored = run(engine, org_id, case, index)
        assert {p.split(":")[0].removeprefix("account ") for p in problems} \
            == expected.problems, (index, problems, case)
        assert {ref: doc for ref, (doc, _) in stored.items()} == expected.documents, \
            (index, case)
        for ref, (doc, xml) in stored.items():
            assert xml_facts(xml) == expected_xml(doc, case.currency), (index, ref)


_SETTINGS: dict[str, Any] = dict(
    deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large])


@settings(max_examples=int(os.environ.get("SEALBILL_ORACLE_QUICK", "300")), derandomize=True,
          **_SETTINGS)
@given(cases())
def test_stored_documents_equal_the_reference_calculator(
        oracle_engine: Engine, case: RefCase) -> None:
    check_case(oracle_engine, case)


@pytest.mark.deep
@settings(max_examples=int(os.environ.get("SEALBILL_ORACLE_EXAMPLES", "10000")),
          derandomize=False, **_SETTINGS)
@given(cases())
def test_deep_stored_documents_equal_the_reference_calculator(
        oracle_engine: Engine, case: RefCase) -> None:
    check_case(oracle_engine, case)
