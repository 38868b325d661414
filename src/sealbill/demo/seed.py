"""Seed a demo organization: plans of every charge model, accounts, contacts, a month of usage.

Deterministic for a given seed, so two demos bill the same amounts. Accounts go through the
same import path as an operator's file, and usage through ``sealbill import usage``'s code.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from sealbill.domain.catalog import Charge, ChargeModel, ChargeProperties, Interval, Plan, Tier
from sealbill.pipeline.billing.rate import previous_period
from sealbill.pipeline.parties.organizations import create_org
from sealbill.store.billing import catalog as catalog_store
from sealbill.store.parties import records as parties

from . import identities as ids

D = Decimal
CURRENCIES = ("EUR", "USD", "GBP", "CHF")

ORGANIZATION: dict[str, Any] = {
    "slug": "acme-cloud", "legal_name": "Acme Cloud SAS",
    "address_line1": "12 rue de la Paix", "postcode": "75002", "city": "Paris",
    "country": "FR", "siren": "732829320", "siret": "73282932000074",
    "vat_id": "FR44732829320",
    "legal_info": "SAS au capital de 10 000 € — RCS Paris 732 829 320",
    "iban": "FR7630006000011234567890189", "bic": "BNPAFRPPXXX",
    "invoice_series": "F-", "credit_note_series": "AV-", "default_locale": "fr",
    "default_currency": "EUR", "sender_email": "factures@acme-cloud.example",
    "sender_name": "Acme Cloud — Facturation", "archive_email": "archive@acme-cloud.example",
    "electronic_address": "factures@acme-cloud.example", "phone": "+33 1 23 45 67 89",
    "website": "https://acme-cloud.example", "payment_terms_days": 30,
    "dpo_name": "Claire Martin", "dpo_email": "dpo@acme-cloud.example",
    # The demo's names are fictitious, under the reserved .example TLD (RFC 2606); each one
    # that may receive mail is listed here, exactly. seed_organization adds the customer
    # domains it creates (customer-N.example); example.com, localhost and the like are
    # refused even so (domain/address_policy.py).
    "address_policy": {"allowed_reserved_domains": ["acme-cloud.example",
                                                    "cabinet-expert.example"]},
}
ACCOUNTANT_DOMAIN = "cabinet-expert.example"


def customer_domain(index: int) -> str:
    """The fictitious domain of the demo's customer ``index`` (0-based)."""
    return f"customer-{index + 1}.example"


def demo_organization(accounts: int) -> dict[str, Any]:
    """The demo organization, its allow-list naming exactly the domains the demo uses."""
    org = dict(ORGANIZATION)
    allowed = list(org["address_policy"]["allowed_reserved_domains"])
    allowed += [customer_domain(i) for i in range(accounts)]
    org["address_policy"] = {"allowed_reserved_domains": allowed}
    return org

METRICS = (
    ("api_calls", "API calls", "sum", None),
    ("storage_gb", "Storage (GB)", "time_weighted_sum", None),
    ("active_users", "Active users", "unique_count", "user"),
    ("sms", "SMS sent", "count", None),
    ("payments", "Payments processed", "sum", None),
    ("seats", "Seats", "max", None),
)


def _charges(scale: Decimal) -> tuple[Charge, ...]:
    """Every charge model once; ``scale`` converts EUR prices to other currencies."""
    def p(value: str) -> Decimal:
        return (D(value) * scale).quantize(D(value)) if "." in value else D(value) * scale

    return (
        Charge("base", ChargeModel.FLAT, "Abonnement mensuel", "Monthly subscription",
               ChargeProperties(amount=p("29.00"))),
        Charge("api", ChargeModel.GRADUATED, "Appels API", "API calls", ChargeProperties(tiers=(
            Tier(D(10_000), D(0)), Tier(D(1_000_000), p("0.000020")),
            Tier(None, p("0.000012")))), metric_code="api_calls"),
        Charge("storage", ChargeModel.PER_UNIT, "Stockage (Go-mois)", "Storage (GB-month)",
               ChargeProperties(unit_price=p("0.023")), metric_code="storage_gb"),
        Charge("users", ChargeModel.VOLUME, "Utilisateurs actifs", "Active users",
               ChargeProperties(tiers=(Tier(D(10), p("4.00")), Tier(D(50), p("3.00")),
                                       Tier(None, p("2.00")))), metric_code="active_users"),
        Charge("sms", ChargeModel.PACKAGE, "SMS (par lot de 100)", "SMS (per pack of 100)",
               ChargeProperties(amount=p("1.50"), package_size=D(100)), metric_code="sms"),
        Charge("payments", ChargeModel.PERCENTAGE, "Commission sur paiements",
               "Payment processing fee", ChargeProperties(rate=D("1.4")),
               metric_code="payments"),
    )


RATES = {"EUR": D(1), "USD": D("1.1"), "GBP": D("0.85"), "CHF": D("0.95")}


def plans(start: date) -> list[Plan]:
    result = []
    for currency in CURRENCIES:
        charges = _charges(RATES[currency])
        suffix = currency.lower()
        result.append(Plan(f"starter-{suffix}", "Starter", Interval.MONTH, currency, 1, start,
                           charges[:2]))
        result.append(Plan(f"pro-{suffix}", "Pro", Interval.MONTH, currency, 1, start,
                           charges))
    return result


def account_record(index: int, rng: random.Random) -> dict[str, Any]:
    country = ids.country_for(index)
    place = ids.PLACES[country]
    business = index % 3 != 0
    record: dict[str, Any] = {
        "reference": f"C{index + 1:06d}", "country": country, "city": place.city,
        "postcode": place.postcode, "currency": place.currency, "locale": place.locale,
        "address_line1": f"{rng.randrange(1, 200)} {rng.choice(ids.STREETS)}",
        "is_business": business, "payment_kind": "card",
        "payment_display": f"Visa •••• {rng.randrange(0, 9999):04d}",
        # OSS evidence beside the billing country: where the signup IP address geolocates.
        "ip_country": country,
    }
    person = rng.choice(ids.FIRST)
    if business:
        record["name"] = f"{rng.choice(ids.COMPANY)} {person} & Fils"
        if country == "FR":
            record["siren"] = ids.siren(rng)
            record["vat_id"] = ids.french_vat(record["siren"])
        elif country == "DE" and index % 2 == 0:
            record["vat_id"] = ids.german_vat(rng)
        elif country == "BE":
            record["vat_id"] = ids.belgian_vat(rng)
    else:
        record["name"] = f"{person} {rng.choice(['Dupont', 'Müller', 'Rossi', 'Smith'])}"
    email = f"billing-{index + 1}@{customer_domain(index)}"
    record["electronic_address"] = email
    record["contacts"] = [
        {"email": email, "name": person, "role": "billing",
         "verified": {"by": "demo-seed", "reason": "demo data: address confirmed at signup"}},
        {"email": f"admin-{index + 1}@{customer_domain(index)}", "role": "admin"},
    ]
    return record


def seed_organization(conn: Connection, accounts: int, period_start: date, workdir: Path,
                      seed: int = 2019) -> dict[str, Any]:
    """Create the demo org, plans, accounts and subscriptions; write the usage file."""
    rng = random.Random(seed)
    org_id = create_org(conn, demo_organization(accounts))
    at = datetime.now(UTC)
    for code, name, aggregation, field in METRICS:
        catalog_store.add_metric(conn, org_id, code, name, aggregation, field)
    for plan in plans(period_start - timedelta(days=365)):
        catalog_store.add_plan(conn, org_id, plan, at)
    records = [account_record(i, rng) for i in range(accounts)]
    accounts_file = workdir / "accounts.json"
    accounts_file.write_text(json.dumps(records, ensure_ascii=False, indent=1),
                             encoding="utf-8")
    from sealbill.pipeline.parties.accounts_import import import_accounts

    import_accounts(conn, org_id, accounts_file, actor="demo-seed")
    account_ids = parties.account_ids_by_reference(conn, org_id)
    _add_accountant(conn, org_id, [account_ids[r["reference"]] for r in records[:12]])
    _subscribe(conn, org_id, records, account_ids, period_start, at)
    usage_file = workdir / "usage.jsonl"
    # Usage is billed in arrears, so the demo meters the month before the billed period.
    write_usage(usage_file, records, previous_period(period_start)[0], rng)
    return {"org_id": org_id, "accounts_file": accounts_file, "usage_file": usage_file}


def _add_accountant(conn: Connection, org_id: int, account_ids: list[int]) -> None:
    """One accountant verified on several accounts: a legitimate multi-account recipient."""
    contact_id = parties.add_contact(conn, org_id, f"compta@{ACCOUNTANT_DOMAIN}",
                                     name="Cabinet Expert", actor="demo-seed")
    for account_id in account_ids:
        link = parties.link_contact(conn, org_id, contact_id, account_id, "billing",
                                    actor="demo-seed")
        parties.set_link_status(conn, org_id, link, "verified", actor="demo-seed",
                                method="operator", reason="mandate letter on file")


def _subscribe(conn: Connection, org_id: int, records: list[dict[str, Any]],
               account_ids: dict[str, int], period_start: date, at: datetime) -> None:
    rows = []
    for index, record in enumerate(records):
        tier = "pro" if index % 4 else "starter"
        rows.append({"account_id": account_ids[record["reference"]],
                     "external_id": f"sub-{index + 1}",
                     "plan_code": f"{tier}-{record['currency'].lower()}",
                     "started_on": period_start - timedelta(days=90 + index % 60)})
    catalog_store.add_subscriptions_bulk(conn, org_id, rows, at)


def write_usage(path: Path, records: list[dict[str, Any]], period_start: date,
                rng: random.Random) -> int:
    start = datetime(period_start.year, period_start.month, 1, tzinfo=UTC)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            for n in range(rng.randrange(12, 40)):
                metric = METRICS[n % len(METRICS)][0]
                moment = start + timedelta(minutes=rng.randrange(0, 27 * 24 * 60))
                event: dict[str, Any] = {
                    "event_id": f"{record['reference']}-{n}",
                    "account_reference": record["reference"], "metric_code": metric,
                    "timestamp": moment.isoformat(),
                    "value": str(_usage_value(metric, rng)),
                }
                if metric == "active_users":
                    event["properties"] = {"user": f"u{rng.randrange(0, 30)}"}
                handle.write(json.dumps(event) + "\n")
                count += 1
    return count


def _usage_value(metric: str, rng: random.Random) -> Decimal:
    if metric == "api_calls":
        return D(rng.randrange(0, 400_000))
    if metric == "storage_gb":
        return D(rng.randrange(1, 500))
    if metric == "payments":
        return D(rng.randrange(100, 50_000)) / 100
    return D(rng.randrange(1, 20))
