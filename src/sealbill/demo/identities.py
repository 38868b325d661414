"""Deterministic, valid-looking identities for demo accounts (checksums that pass stdnum).

Demo addresses use the reserved ``example.*`` domains (RFC 2606), so a demo mail can never
reach a real person even if it escaped the local sink.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from stdnum import luhn
from stdnum.iso7064 import mod_11_10


def siren(rng: random.Random) -> str:
    body = f"{rng.randrange(10_000_000, 99_999_999)}"
    return body + luhn.calc_check_digit(body)


def french_vat(siren_number: str) -> str:
    return f"FR{(12 + 3 * (int(siren_number) % 97)) % 97:02d}{siren_number}"


def german_vat(rng: random.Random) -> str:
    body = f"{rng.randrange(10_000_000, 99_999_999)}"
    return "DE" + body + mod_11_10.calc_check_digit(body)


def belgian_vat(rng: random.Random) -> str:
    body = rng.randrange(1_000_000, 9_999_999)
    return f"BE0{body}{97 - (body % 97):02d}"


@dataclass(frozen=True)
class Place:
    country: str
    city: str
    postcode: str
    currency: str
    locale: str


PLACES = {
    "FR": Place("FR", "Lyon", "69002", "EUR", "fr"),
    "DE": Place("DE", "Berlin", "10115", "EUR", "en"),
    "BE": Place("BE", "Bruxelles", "1000", "EUR", "fr"),
    "IT": Place("IT", "Milano", "20121", "EUR", "en"),
    "US": Place("US", "Austin", "78701", "USD", "en"),
    "GB": Place("GB", "London", "EC1A 1BB", "GBP", "en"),
    "CH": Place("CH", "Genève", "1201", "CHF", "fr"),
}

FIRST = ["Amélie", "Bruno", "Chloé", "Dieter", "Emma", "François", "Giulia", "Hugo", "Inès",
         "Jean-Luc", "Karin", "Léa", "Marc", "Noémie", "Olivier", "Paula", "Quentin", "Rosa"]
COMPANY = ["Boulangerie", "Atelier", "Studio", "Brasserie", "Conseil", "Logistique", "Garage",
           "Pharmacie", "Imprimerie", "Cabinet", "Ferme", "Librairie", "Transports"]
STREETS = ["rue de la République", "avenue Jean Jaurès", "Hauptstraße", "Main Street",
           "chemin des Vignes", "boulevard Voltaire", "Via Roma", "High Street"]


def country_for(index: int) -> str:
    """60 % France, then Germany, Belgium, Italy, the US, the UK and Switzerland."""
    return _COUNTRY_CYCLE[index % len(_COUNTRY_CYCLE)]


_COUNTRY_CYCLE = ("FR",) * 12 + ("DE", "DE", "BE", "IT", "US", "US", "GB", "CH")
