"""The organization and catalog the quick-start builds from nothing (shared by the CLI and
HTTP end-to-end tests)."""

ORG = {
    "slug": "acme", "legal_name": "Acme Cloud SAS", "address_line1": "12 rue de la Paix",
    "postcode": "75002", "city": "Paris", "country": "FR", "siren": "732829320",
    "vat_id": "FR44732829320", "legal_info": "SAS au capital de 10 000 EUR - RCS Paris",
    "iban": "FR7630006000011234567890189", "bic": "BNPAFRPPXXX", "invoice_series": "F-",
    "sender_email": "billing@acme.example", "sender_name": "Acme Billing",
}

CATALOG_YAML = """\
metrics:
  - code: api_calls
    name: API calls
    aggregation: sum
plans:
  - code: starter
    name: Starter
    currency: EUR
    prices:
      - effective_from: 2026-01-01
        charges:
          - {code: base, model: flat, description_fr: Abonnement, description_en: Subscription,
             amount: "30.00"}
          - {code: api, model: per_unit, description_fr: Appels API, description_en: API calls,
             metric: api_calls, unit_price: "0.001"}
  - code: pro
    name: Pro
    currency: EUR
    prices:
      - effective_from: 2026-01-01
        charges:
          - {code: base, model: flat, description_fr: Abonnement, description_en: Subscription,
             amount: "90.00"}
"""

ACCOUNTS = [
    {"reference": "C001", "name": "Client Un SARL", "address_line1": "1 rue A",
     "postcode": "69001", "city": "Lyon", "country": "FR"},
    {"reference": "C002", "name": "Client Deux SA", "address_line1": "2 rue B",
     "postcode": "33000", "city": "Bordeaux", "country": "FR"},
]
