"""The reference documents of a case's two billing runs (October then November 2026), each
finalized on its run's first day: lines (``reference.py``), VAT and OSS
(``reference_tax.py``), then the document rules:

- a document whose lines total less than zero (VAT included) becomes a credit note with the
  signs turned (positive amounts, VAT recomputed); it needs a finalized invoice of the account
  to correct, else the account is reported as a problem and nothing is issued for it;
- a document without lines or with a zero total is not issued;
- customer credit: at each finalization the account's balance (its manual credits and credit
  notes, less what earlier invoices took) pays the invoice up to its total (BT-113 paid
  amount, BT-115 amount due = total − paid), never below zero; a credit note adds its total
  to the balance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction

from tests.oracle.reference import RefAccount, RefLine, RefPlan, account_lines
from tests.oracle.reference_tax import (
    THRESHOLD_EUR_CENTS,
    breakdown,
    exchange_rate,
    half_up,
    in_euro_cents,
    major,
    oss_candidate,
    rate_text,
    vat_of,
)

RUNS = (date(2026, 10, 1), date(2026, 11, 1))


@dataclass
class RefCase:
    currency: str
    plans: dict[str, RefPlan]
    accounts: list[RefAccount]
    opted_in: bool = False


@dataclass(frozen=True)
class RefDocument:
    kind: str  # invoice | credit_note
    #: (amount, category, rate, first day, last day), sorted
    lines: tuple[tuple[int, str, str, date, date], ...]
    vat: tuple[tuple[str, str, int, int], ...]  # (category, rate, base, VAT), sorted
    total_excl: int
    total_vat: int
    total_incl: int
    prepaid: int  # BT-113
    vat_eur: int | None  # BT-111, cents (invoices not in EUR with VAT)
    oss_country: str | None


@dataclass
class RunOutcome:
    documents: dict[str, RefDocument] = field(default_factory=dict)
    problems: set[str] = field(default_factory=set)  # accounts left unbilled


def _taxed(acc: RefAccount, lines: list[RefLine], oss: bool, sign: int
           ) -> list[tuple[int, str, Fraction, RefLine]]:
    return [(sign * line.amount, *vat_of(acc.kind, acc.country, line.vat_class, oss), line)
            for line in lines]


def _totals(taxed: list[tuple[int, str, Fraction, RefLine]], currency: str
            ) -> tuple[tuple[tuple[str, str, int, int], ...], int, int]:
    vat = breakdown([(a, c, r) for a, c, r, _ in taxed], currency)
    return vat, sum(v[2] for v in vat), sum(v[3] for v in vat)


class _Ledger:
    """What carries from one run to the next: the OSS total, balances, invoices issued."""

    def __init__(self, case: RefCase) -> None:
        self.case = case
        self.oss_total = 0
        self.balance = {acc.reference: 0 for acc in case.accounts}
        self.invoiced: set[str] = set()


def _document(ledger: _Ledger, acc: RefAccount, index: int, out: RunOutcome) -> None:
    case, run = ledger.case, RUNS[index]
    lines = account_lines(acc, case.plans, run, case.currency, with_late=index > 0)
    ledger.balance[acc.reference] += acc.credits[index]
    if not lines:
        return
    taxed = _taxed(acc, lines, False, 1)
    vat, excl, tax = _totals(taxed, case.currency)
    kind, sign = "invoice", 1
    if excl + tax < 0:
        kind, sign = "credit_note", -1
        taxed = _taxed(acc, lines, False, -1)
        vat, excl, tax = _totals(taxed, case.currency)
    elif excl + tax == 0:
        return
    oss_country = None
    if oss_candidate(acc.kind):
        counted = 0 if kind == "credit_note" else max(in_euro_cents(excl, case.currency, run), 0)
        ledger.oss_total += counted
        if case.opted_in or ledger.oss_total > THRESHOLD_EUR_CENTS:
            oss_country = acc.country
            taxed = _taxed(acc, lines, True, sign)
            vat, excl, tax = _totals(taxed, case.currency)
    if kind == "credit_note" and acc.reference not in ledger.invoiced:
        out.problems.add(acc.reference)
        return
    prepaid = 0
    if kind == "credit_note":
        ledger.balance[acc.reference] += excl + tax
    else:
        ledger.invoiced.add(acc.reference)
        prepaid = max(0, min(ledger.balance[acc.reference], excl + tax))
        ledger.balance[acc.reference] -= prepaid
    vat_eur = None
    if case.currency != "EUR" and tax != 0:
        vat_eur = half_up(major(tax, case.currency) / exchange_rate(case.currency, run), "EUR")
    out.documents[acc.reference] = RefDocument(
        kind, tuple(sorted((a, c, rate_text(r), line.start, line.end - timedelta(days=1))
                           for a, c, r, line in taxed)),
        vat, excl, tax, excl + tax, prepaid, vat_eur, oss_country)


def reference_runs(case: RefCase) -> list[RunOutcome]:
    """The October and November outcomes, accounts billed in the order they were created."""
    ledger = _Ledger(case)
    outcomes = []
    for index in range(len(RUNS)):
        out = RunOutcome()
        for acc in case.accounts:
            _document(ledger, acc, index, out)
        outcomes.append(out)
    return outcomes
