"""Run an oracle case through sealbill's real pipeline on SQLite and read back what it stored:
the October run (billed, credits recorded, finalized on 1 October), the late events, then the
November run (billed, credits recorded, finalized on 1 November). The documents are read as
the stored invoice and as the Factur-X XML (``build_cii``), parsed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from lxml import etree
from sqlalchemy.engine import Engine

from sealbill.demo.seed import ORGANIZATION
from sealbill.documents.cii import NS, build_cii
from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan, Tier
from sealbill.domain.taxes import VatRateClass
from sealbill.domain.usage import UsageEvent
from sealbill.pipeline.billing.finalize import finalize_run
from sealbill.pipeline.billing.invoice import bill_period
from sealbill.pipeline.billing.usage_import import record_usage
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.billing import balances
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.billing.exchange_rates import add_rates
from sealbill.store.billing.invoices import load_invoice
from sealbill.store.parties import records as parties
from tests.oracle.reference import AGGREGATION, FIELD, GROUP_BY, RefAccount, RefCharge
from tests.oracle.reference_run import RUNS, RefCase, RefDocument
from tests.oracle.reference_tax import EXCHANGE, KINDS

AT = datetime(2025, 9, 1, tzinfo=UTC)
_MODELS = {"fee": ChargeModel.FLAT, "unit": ChargeModel.PER_UNIT,
           "graduated": ChargeModel.GRADUATED, "volume": ChargeModel.VOLUME,
           "package": ChargeModel.PACKAGE, "percentage": ChargeModel.PERCENTAGE,
           "per_transaction": ChargeModel.PERCENTAGE}


def _dec(value: Fraction | None) -> Decimal | None:
    return None if value is None else Decimal(value.numerator) / Decimal(value.denominator)


def _charge(index: int, ref: RefCharge) -> Charge:
    d = _dec
    if ref.model == "fee":
        props = ChargeProperties(amount=d(ref.price) or Decimal(0))
    elif ref.model == "unit":
        props = ChargeProperties(unit_price=d(ref.price) or Decimal(0))
    elif ref.model == "package":
        props = ChargeProperties(amount=d(ref.price) or Decimal(0),
                                 package_size=Decimal(ref.package_size),
                                 free_units=Decimal(ref.free_units))
    elif ref.model in ("graduated", "volume"):
        props = ChargeProperties(tiers=tuple(
            Tier(None if t.up_to is None else Decimal(t.up_to), d(t.price) or Decimal(0),
                 d(t.flat) or Decimal(0)) for t in ref.tiers))
    else:
        props = ChargeProperties(rate=d(ref.rate) or Decimal(0),
                                 fixed_fee=d(ref.fixed) or Decimal(0),
                                 min_per_transaction=d(ref.low),
                                 max_per_transaction=d(ref.high))
    return Charge(f"c{index}", _MODELS[ref.model], f"Charge c{index}", f"Charge c{index}",
                  props, metric_code=ref.metric, vat_rate_class=VatRateClass(ref.vat_class),
                  usage_interval=Interval.YEAR if ref.yearly_usage else None)


def _event(acc: RefAccount, index: int) -> UsageEvent:
    e = acc.events[index]
    return UsageEvent(e.event_id, acc.reference, e.metric, e.at, _dec(e.value), dict(e.props))


def load(engine: Engine, case: RefCase, slug: str) -> int:
    """The organization of ``case``: catalog, rates, accounts, subscriptions, on-time usage."""
    with engine.begin() as conn:
        org_id = create_org(conn, {**ORGANIZATION, "slug": slug,
                                   "oss_opt_in": case.opted_in})
        for code in sorted({c.metric for p in case.plans.values() for c in p.charges
                            if c.metric}):
            catalog_store.add_metric(conn, org_id, code, code, AGGREGATION[code],
                                     FIELD.get(code), group_by=GROUP_BY.get(code))
        for code, ref in case.plans.items():
            catalog_store.add_plan(conn, org_id, Plan(
                code, code, Interval.YEAR if ref.yearly else Interval.MONTH, case.currency,
                1, date(2020, 1, 1), tuple(_charge(i, c) for i, c in enumerate(ref.charges))),
                AT)
        if case.currency in EXCHANGE:
            add_rates(conn, org_id, [(case.currency, day, _dec(rate) or Decimal(1), "ECB")
                                     for day, rate in EXCHANGE[case.currency].items()], AT)
        for acc in case.accounts:
            business, valid, _ = KINDS[acc.kind]
            account_id = parties.create_account(
                conn, org_id, reference=acc.reference, name=f"Client {acc.reference}",
                address_line1="1 Main St", postcode="75001", city="Paris",
                country=acc.country, is_business=business, vat_id_valid=valid,
                ip_country=acc.country, currency=case.currency, locale="fr",
                is_internal_test=False)
            sub_id = catalog_store.add_subscription(
                conn, org_id, account_id, f"sub-{acc.reference}", acc.first_plan, acc.start,
                AT, trial_ends_on=acc.trial_end)
            if acc.change:
                catalog_store.change_plan(conn, org_id, sub_id, acc.change[1], acc.change[0],
                                          AT)
            if acc.cancel:
                catalog_store.cancel(conn, org_id, sub_id, on=acc.cancel[0],
                                     at_period_end=acc.cancel[1])
    _record(engine, org_id, case, late=False)
    return org_id


def _record(engine: Engine, org_id: int, case: RefCase, late: bool) -> None:
    events = [_event(acc, i) for acc in case.accounts for i, e in enumerate(acc.events)
              if e.late == late]
    if late:  # a client resending part of what it sent on time: stored once
        events += [_event(acc, i) for acc in case.accounts
                   for i, e in enumerate(acc.events) if not e.late][::3]
    if events:
        record_usage(engine, org_id, events)


def run(engine: Engine, org_id: int, case: RefCase, index: int
        ) -> tuple[list[str], dict[str, tuple[RefDocument, bytes]]]:
    """Bill and finalize the run ``index`` (the late events are recorded before the second):
    its problems and its documents by account reference."""
    if index == 1:
        _record(engine, org_id, case, late=True)
    day = RUNS[index]
    result = bill_period(engine, org_id, f"{day:%Y-%m}", actor="oracle", workers=1)
    with engine.begin() as conn:
        ids = parties.account_ids_by_reference(conn, org_id)
        for acc in case.accounts:
            if acc.credits[index]:
                balances.add_entry(conn, org_id, ids[acc.reference], case.currency,
                                   acc.credits[index], kind="manual", reason="oracle",
                                   actor="oracle", at=AT)
    done = finalize_run(engine, org_id, result.run_id or 0, issue_date=day)
    found = {}
    with engine.begin() as conn:
        for invoice_id, _ in done:
            inv = load_invoice(conn, org_id, invoice_id)
            lines = tuple(sorted((line.amount_minor, line.vat_category.value,
                                  format(line.vat_rate.normalize(), "f"), line.period_start,
                                  line.period_end) for line in inv.lines))
            vat = tuple(sorted((t.category.value, format(t.rate.normalize(), "f"),
                                t.base_minor, t.tax_minor) for t in inv.tax_subtotals))
            accounting = inv.vat_accounting
            found[inv.account_reference] = (RefDocument(
                inv.kind.value, lines, vat, inv.total_excl_minor, inv.tax_total_minor,
                inv.total_incl_minor, inv.prepaid_minor,
                None if accounting is None else accounting.tax_total_minor, inv.oss_country),
                build_cii(inv))
    return result.problems, found


def xml_facts(xml: bytes) -> dict[str, Any]:
    """What the Factur-X XML says of the amounts, parsed."""
    root = etree.fromstring(xml)

    def texts(path: str, node: Any = root) -> list[str]:
        return [str(t) for t in node.xpath(path, namespaces=NS)]

    settlement = root.xpath("//ram:ApplicableHeaderTradeSettlement", namespaces=NS)[0]
    sums = settlement.xpath("ram:SpecifiedTradeSettlementHeaderMonetarySummation",
                            namespaces=NS)[0]
    taxes = sorted(
        (texts("ram:CategoryCode/text()", t)[0],
         (texts("ram:RateApplicablePercent/text()", t) or ["-"])[0],
         texts("ram:BasisAmount/text()", t)[0], texts("ram:CalculatedAmount/text()", t)[0])
        for t in settlement.xpath("ram:ApplicableTradeTax", namespaces=NS))
    lines = sorted(
        (texts(".//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount"
               "/text()", item)[0],
         texts(".//ram:ApplicableTradeTax/ram:CategoryCode/text()", item)[0])
        for item in root.xpath("//ram:IncludedSupplyChainTradeLineItem", namespaces=NS))
    return {
        "type": texts("//rsm:ExchangedDocument/ram:TypeCode/text()")[0],
        "currency": texts("ram:InvoiceCurrencyCode/text()", settlement)[0],
        "tax_currency": (texts("ram:TaxCurrencyCode/text()", settlement) or [None])[0],
        "taxes": taxes, "lines": lines,
        "totals": {tag: texts(f"ram:{tag}/text()", sums) for tag in (
            "LineTotalAmount", "TaxBasisTotalAmount", "GrandTotalAmount",
            "TotalPrepaidAmount", "DuePayableAmount")},
        "tax_totals": sorted((t.get("currencyID"), t.text)
                             for t in sums.xpath("ram:TaxTotalAmount", namespaces=NS)),
    }
