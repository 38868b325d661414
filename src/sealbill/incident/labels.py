"""Words of the drafts in French and English: data categories, consequences, measures, fields.

Invariants:
- every label exists in both languages (checked by the tests), so a French draft never falls
  back to English text silently;
- an unknown data category is shown by its key, never dropped: the notification must list
  every category the ledger recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

LANGUAGES = ("fr", "en")

DATA_CATEGORIES: dict[str, dict[str, str]] = {
    "account_reference": {"en": "customer account reference",
                          "fr": "référence du compte client"},
    "subscription_id": {"en": "subscription identifier", "fr": "identifiant d'abonnement"},
    "name": {"en": "customer name", "fr": "nom du client"},
    "admin_email": {"en": "administrator email address",
                    "fr": "adresse électronique de l'administrateur"},
    "email": {"en": "email address", "fr": "adresse électronique"},
    "postal_address": {"en": "postal address", "fr": "adresse postale"},
    "billing_address": {"en": "billing address", "fr": "adresse de facturation"},
    "payment_method": {"en": "payment method (masked)", "fr": "moyen de paiement (masqué)"},
    "amount": {"en": "invoice amount", "fr": "montant de la facture"},
    "invoice": {"en": "invoice document", "fr": "facture"},
    "credit_note": {"en": "credit note document", "fr": "avoir"},
    "invoice_lines": {"en": "invoice lines (services and usage)",
                      "fr": "lignes de facture (services et consommation)"},
    "vat_id": {"en": "VAT number", "fr": "numéro de TVA"},
    "iban": {"en": "bank account (IBAN)", "fr": "compte bancaire (IBAN)"},
}

#: Likely consequence -> the categories that make it likely.
CONSEQUENCES: dict[str, tuple[frozenset[str], dict[str, str]]] = {
    "phishing": (frozenset({"admin_email", "email", "account_reference", "subscription_id",
                            "name"}),
                 {"en": "targeted phishing that quotes the customer's real invoice details",
                  "fr": "hameçonnage ciblé reprenant les vraies données de facturation du "
                        "client"}),
    "invoice_fraud": (frozenset({"amount", "payment_method", "iban", "invoice"}),
                      {"en": "invoice or payment-redirection fraud (a fake invoice or a "
                             "request to pay to new bank details)",
                       "fr": "fraude à la facture ou au changement de coordonnées bancaires "
                             "(fausse facture, demande de paiement sur un nouveau compte)"}),
    "disclosure": (frozenset({"amount", "invoice_lines", "postal_address", "name"}),
                   {"en": "disclosure of the customer's identity, address and spending to "
                          "another customer",
                    "fr": "divulgation de l'identité, de l'adresse et des dépenses du client "
                          "à un autre client"}),
}

AUTO_MEASURES: dict[str, dict[str, str]] = {
    "sending_paused": {"en": "sending halted for the organization (kill switch) at {at}",
                       "fr": "envois suspendus pour l'organisation (coupe-circuit) le {at}"},
    "rotated": {"en": "public account identifiers rotated for {accounts} account(s) and "
                      "{tokens} outstanding verification token(s) / signed link(s) revoked "
                      "at {at}",
                "fr": "identifiants publics de {accounts} compte(s) renouvelés et {tokens} "
                      "jeton(s) de vérification / lien(s) signé(s) en cours révoqués le {at}"},
    "deletion_requested": {"en": "deletion requested from the {count} unintended recipient(s) "
                                 "at {at}",
                           "fr": "suppression demandée aux {count} destinataire(s) non "
                                 "légitime(s) le {at}"},
    "deletion_to_request": {"en": "request deletion from the {count} unintended recipient(s)",
                            "fr": "demander la suppression aux {count} destinataire(s) non "
                                  "légitime(s)"},
    "customers_warned": {"en": "affected customers warned about phishing at {at}",
                         "fr": "clients concernés avertis du risque d'hameçonnage le {at}"},
    "customers_to_warn": {"en": "warn the affected customers about phishing",
                          "fr": "avertir les clients concernés du risque d'hameçonnage"},
}

SUBJECT_CATEGORIES = {
    "consumers": {"en": "customers who are natural persons",
                  "fr": "clients personnes physiques"},
    "business": {"en": "contact persons of business customers",
                 "fr": "personnes de contact de clients professionnels"},
}

NATURES = {"confidentiality": {"en": "confidentiality", "fr": "confidentialité"},
           "integrity": {"en": "integrity", "fr": "intégrité"},
           "availability": {"en": "availability", "fr": "disponibilité"}}

COMMUNICATION = {
    "done": {"en": "done", "fr": "effectuée"},
    "planned": {"en": "planned", "fr": "prévue"},
    "exempt": {"en": "not made: exemption under Art. 34(3)",
               "fr": "non effectuée : exception de l'art. 34(3)"},
    "not_required": {"en": "not required (risk not high, Art. 34(1))",
                     "fr": "non requise (risque non élevé, art. 34(1))"},
}

#: What to do to fill a missing field of the notification.
HINTS: dict[str, str] = {
    "notification_type": "sealbill incident update ID --notification-type initial",
    "delay_reason": "sealbill incident update ID --delay-reason TEXT",
    "controller": "complete the organization record (legal name, sender email)",
    "dpo": "set dpo_name and dpo_email on the organization",
    "breach_period": "widen the scope or: sealbill incident update ID --breach-start/--breach-end",
    "detection": "sealbill incident update ID --detection TEXT",
    "nature": "sealbill incident update ID --nature confidentiality",
    "cause": "sealbill incident update ID --cause TEXT",
    "description": "sealbill incident update ID --description TEXT",
    "subjects": "check the incident scope (sealbill incident radius ID)",
    "records": "check the incident scope (sealbill incident radius ID)",
    "data_categories": "the ledger recorded no data category for the messages concerned",
    "member_states": "the affected accounts have no country recorded",
    "consequences": "sealbill incident update ID --consequence TEXT",
    "severity": "sealbill incident assess ID",
    "measures": "sealbill incident update ID --measure-taken TEXT",
    "communication": "sealbill incident decide ID ... --communication planned|done|exempt",
}


def hint(key: str, incident_id: int) -> str:
    """The command that fills ``key``, with the incident's id in place of ``ID``."""
    return re.sub(r"\bID\b", str(incident_id), HINTS[key])


SUMMARY = {
    "en": "{records} invoice(s) of {subjects} customer(s) were emailed to {recipients} "
          "recipient(s) not entitled to them ({disclosures} disclosure(s)), between {first} "
          "and {last}.",
    "fr": "{records} facture(s) de {subjects} client(s) ont été envoyées par courriel à "
          "{recipients} destinataire(s) non légitime(s) ({disclosures} divulgation(s)), entre "
          "le {first} et le {last}.",
}


def category_label(key: str, lang: str) -> str:
    return DATA_CATEGORIES.get(key, {}).get(lang, key)


def category_labels(keys: Iterable[str], lang: str) -> list[str]:
    return [category_label(key, lang) for key in keys]


def likely_consequences(categories: Iterable[str]) -> list[str]:
    """Consequence keys the disclosed categories make likely, in a stable order."""
    present = set(categories)
    return [key for key, (triggers, _labels) in CONSEQUENCES.items() if present & triggers]


def consequence_label(key: str, lang: str) -> str:
    return CONSEQUENCES[key][1][lang]
