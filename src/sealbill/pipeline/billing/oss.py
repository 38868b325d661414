"""OSS in a billing run: the seller's running total of cross-border consumer sales, and the
drafts it moves to the consumer's country rate (``domain/oss.py`` holds the rules).

The drafts are decided in the order the run records them (account id order), in the main
process, so the supply that crosses €10,000 is the same in a dry run and in the real run, and
on a rerun (the totals of the year are read back from the invoices already stored).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealbill.domain.invoices import InvoiceLine, VatCategory, tax_breakdown, totals
from sealbill.domain.money import to_major, to_minor
from sealbill.domain.oss import VIES_NOTE, Evidence, OssYear, RateTable, rate_class_of
from sealbill.domain.taxes import EU_MEMBER_STATES, FRENCH_VAT_TERRITORY, TaxError
from sealbill.store.billing.exchange_rates import rate_on
from sealbill.store.billing.invoices import DraftInvoice
from sealbill.store.schema import billing_runs, invoices

#: The scheme of a buyer outside the EU (out of scope of French VAT, category O).
OUTSIDE_EU = "outside_eu"


@functools.cache
def rate_table() -> RateTable:
    """The member states' rates shipped with sealbill (``domain/data/eu_vat_rates.json``)."""
    text = resources.files("sealbill.domain").joinpath("data/eu_vat_rates.json").read_text(
        encoding="utf-8")
    return RateTable.from_json(text)


def candidate_facts(account: dict[str, Any]) -> dict[str, Any] | None:
    """Tax facts stored with the invoice of a buyer outside France (``None`` in France):

    - an EU business with a valid VAT id (reverse charge): ``scheme`` ``reverse_charge`` and
      how the id was checked (format and checksum; VIES not consulted);
    - an EU consumer: the country and the evidence; :func:`apply_oss` decides the scheme;
    - outside the EU: ``scheme`` ``outside_eu``; a consumer's evidence too, which
      :func:`apply_oss` requires to agree (art. 24b of regulation 282/2011).
    """
    country = str(account["country"]).upper()
    if country in FRENCH_VAT_TERRITORY:
        return None
    evidence = Evidence(country, account.get("ip_country"), account.get("bank_country"))
    if country in EU_MEMBER_STATES:
        if account["is_business"] and account["vat_id_valid"]:
            return {"scheme": "reverse_charge", "country": country, "vat_id_check": VIES_NOTE}
        return {"country": country, "evidence": evidence.as_dict()}
    if account["is_business"]:
        return {"scheme": OUTSIDE_EU, "country": country, "customer": "business"}
    return {"scheme": OUTSIDE_EU, "country": country, "customer": "consumer",
            "evidence": evidence.as_dict()}


def year_totals(conn: Connection, org_id: int, year: int, opted_in: bool) -> OssYear:
    """This year's and last year's totals from the invoices already stored."""
    def total(of_year: int) -> int:
        return int(conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(invoices.c.oss_eur_minor), 0))
            .join(billing_runs, billing_runs.c.id == invoices.c.run_id)
            .where(invoices.c.organization_id == org_id,
                   billing_runs.c.period.like(f"{of_year}-%"))).scalar_one())
    return OssYear(year, total(year - 1), total(year), opted_in)


def apply_oss(conn: Connection, org_id: int, year: OssYear, supply_day: date,
              drafts: list[DraftInvoice], problems: list[str]) -> list[DraftInvoice]:
    """Decide each candidate draft in order; a draft that cannot be decided (no exchange
    rate, contradictory evidence, no rate recorded) is dropped and reported."""
    out = []
    for draft in drafts:
        facts = draft.tax_facts or {}
        if "evidence" not in facts:  # France, a reverse charge, a business outside the EU
            out.append(draft)
            continue
        try:
            if facts.get("scheme") == OUTSIDE_EU:
                _evidence(facts).place_of_supply()  # two agreeing pieces, or reported
                out.append(draft)
            else:
                out.append(_decide(conn, org_id, year, supply_day, draft))
        except (TaxError, LookupError) as error:
            problems.append(f"account {draft.account_reference}: {error}")
    return out


def _decide(conn: Connection, org_id: int, year: OssYear, supply_day: date,
            draft: DraftInvoice) -> DraftInvoice:
    facts = dict(draft.tax_facts or {})
    counted = max(_in_euros(conn, org_id, draft, supply_day), 0)
    if draft.total_excl_minor < 0 or draft.kind.value == "credit_note":
        counted = 0  # a credit does not count towards the threshold
    if not year.destination_applies(counted):
        return replace(draft, oss_eur_minor=counted,
                       tax_facts={**facts, "scheme": "below_threshold"})
    try:
        country = _evidence(facts).place_of_supply()
        retaxed = _retax(draft, country, supply_day)
    except TaxError:
        year.total -= counted
        raise
    return replace(retaxed, oss_eur_minor=counted, tax_facts={**facts, "scheme": "oss"})


def _evidence(facts: dict[str, Any]) -> Evidence:
    found = facts["evidence"]
    return Evidence(found["billing_country"], found["ip_country"], found["bank_country"])


def _in_euros(conn: Connection, org_id: int, draft: DraftInvoice, day: date) -> int:
    if draft.currency == "EUR":
        return draft.total_excl_minor
    found = rate_on(conn, org_id, draft.currency, day)
    if found is None:
        raise LookupError(f"OSS threshold: no EUR exchange rate for {draft.currency} on or "
                          f"before {day}; import one with `sealbill import rates FILE`")
    return to_minor(to_major(draft.total_excl_minor, draft.currency) / found[0], "EUR")


def _retax(draft: DraftInvoice, country: str, day: date) -> DraftInvoice:
    """The draft's French-VAT lines at ``country``'s rate of the same class."""
    table = rate_table()
    lines = [_at_rate(line, table.rate(country, rate_class_of(line.vat_rate), day))
             if line.vat_category is VatCategory.STANDARD else line for line in draft.lines]
    reasons = {t.category: t.exemption_reason for t in draft.tax_subtotals
               if t.exemption_reason}
    subtotals = tax_breakdown(lines, draft.currency, reasons)
    excl, tax, incl = totals(subtotals)
    return replace(draft, lines=lines, tax_subtotals=subtotals, total_excl_minor=excl,
                   tax_total_minor=tax, total_incl_minor=incl)


def _at_rate(line: InvoiceLine, rate: Decimal) -> InvoiceLine:
    """``line`` at a destination rate; a 0 % rate (e-books in Ireland, books in Czechia) is
    category Z, zero rated (EN 16931 BR-S-05 wants a standard rate above zero)."""
    category = VatCategory.ZERO if rate == 0 else VatCategory.STANDARD
    return replace(line, vat_rate=rate, vat_category=category)
