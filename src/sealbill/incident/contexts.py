"""Template contexts for each draft, in each language, built from one :class:`Dossier`.

Invariants:
- a field listed in ``dossier.missing`` is a :class:`Missing` in the Art. 33 context, whatever
  partial value exists: the draft and ``incident status`` report the same gaps;
- the letters to data subjects never name the unintended recipients (their addresses are
  personal data too), and the deletion requests never name the customers whose invoices they
  received: each side learns only what it needs to act;
- every value is a string, a list of strings or a Missing: the templates format nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from babel import Locale

from sealbill.domain.blast_radius import RecipientImpact, SubjectImpact
from sealbill.domain.breach_clock import format_duration
from sealbill.domain.breach_notice import EXEMPTIONS
from sealbill.domain.link_history import normalize_address
from sealbill.incident import labels
from sealbill.incident.facts import Dossier, when
from sealbill.incident.render import Missing

NOTIFICATION_TYPE = {"initial": {"en": "initial", "fr": "initiale"},
                     "complementary": {"en": "complementary", "fr": "complémentaire"},
                     "complete": {"en": "complete", "fr": "complète"}}
SEVERITY_LEVEL = {"low": {"en": "low", "fr": "faible"}, "medium": {"en": "medium", "fr": "moyen"},
                  "high": {"en": "high", "fr": "élevé"},
                  "very high": {"en": "very high", "fr": "très élevé"}}
EXEMPTION_FR = {
    "a": "les données étaient incompréhensibles pour les destinataires (p. ex. chiffrées)",
    "b": "des mesures ultérieures rendent le risque élevé improbable",
    "c": "une communication individuelle exigerait des efforts disproportionnés "
         "(communication publique à la place)",
}


def country_names(codes: list[str], lang: str) -> list[str]:
    territories = Locale.parse(lang).territories
    return [f"{territories.get(code, code)} ({code})" for code in codes]


def controller(d: Dossier) -> dict[str, Any]:
    org = d.org
    address = ", ".join(part for part in (org["address_line1"], org.get("address_line2") or "",
                                          f"{org['postcode']} {org['city']}", org["country"])
                        if part)
    contact = " · ".join(part for part in (org.get("sender_email"), org.get("phone"),
                                           org.get("website")) if part)
    return {"name": org["legal_name"], "address": address, "contact": contact,
            "sender_email": org.get("sender_email") or "", "website": org.get("website") or "",
            "phone": org.get("phone") or ""}


def dpo(d: Dossier, lang: str) -> str | Missing:
    if "dpo" in d.missing:
        return Missing("dpo", lang, d.incident["id"])
    return f"{d.org['dpo_name']} <{d.org['dpo_email']}>"


def notification_context(d: Dossier, lang: str) -> dict[str, Any]:
    """Every field of the Art. 33 notification form, or its Missing marker."""
    facts, view, clock = d.facts, d.view, d.clock
    incident_id = int(d.incident["id"])

    def gap(key: str) -> Missing | None:
        return Missing(key, lang, incident_id) if key in d.missing else None

    taken, proposed = d.measures(lang)
    sev = d.record.get("severity")
    communication = (d.record.get("decision") or {}).get("communication") or {}
    exemption = communication.get("exemption")
    f: dict[str, Any] = {
        "notification_type": gap("notification_type") or NOTIFICATION_TYPE[
            str(facts.notification_type)][lang],
        "aware_at": when(facts.aware_at),
        "deadline": when(clock.deadline),
        "remaining": format_duration(clock.remaining),
        "notified_at": when(facts.notified_at) if facts.notified_at else None,
        "late": clock.late,
        "delay_reason": gap("delay_reason") or (facts.delay_reason or ""),
        "dpo": dpo(d, lang),
        "breach_start": gap("breach_period") or when(facts.breach_start),
        "breach_end": gap("breach_period") or when(facts.breach_end),
        "detection": gap("detection") or facts.detection,
        "nature": gap("nature") or [labels.NATURES[n][lang] for n in facts.nature],
        "cause": gap("cause") or facts.cause,
        "description": gap("description") or d.description(lang),
        "subject_categories": gap("subjects") or d.subject_categories(lang),
        "subject_count": view.subject_count,
        "record_count": view.record_count,
        "disclosure_count": view.disclosure_count,
        "recipient_count": len(view.recipients),
        "data_categories": gap("data_categories") or labels.category_labels(
            view.data_categories, lang),
        "member_states": gap("member_states") or country_names(list(view.member_states), lang),
        "other_countries": country_names(list(view.other_countries), lang),
        "consequences": gap("consequences") or d.consequences(lang),
        "severity": gap("severity") or _severity(sev or {}, lang),
        "measures_taken": gap("measures") or taken,
        "measures_proposed": proposed,
        "communication": gap("communication") or labels.COMMUNICATION[
            str(communication.get("status"))][lang],
        "exemption": (f"({exemption}) " + (EXEMPTION_FR if lang == "fr" else EXEMPTIONS)[
            exemption] if exemption else ""),
        "communication_reason": communication.get("reason") or "",
    }
    return {"lang": lang, "incident": _incident(d), "controller": controller(d), "f": f,
            "missing_count": len(d.missing)}


def _incident(d: Dossier) -> dict[str, Any]:
    return {"id": d.incident["id"], "title": d.incident["title"],
            "opened_at": when(d.incident["opened_at"]), "status": d.incident["status"]}


def _severity(sev: Mapping[str, Any], lang: str) -> dict[str, Any]:
    inputs = sev["inputs"]
    adjustments = [f"{name}: {a['from']} → {a['to']} ({a['justification']})"
                   for name, a in sev["adjustments"].items()]
    return {"dpc": inputs["dpc"], "ei": inputs["ei"],
            "cb": [f"{name}: {inputs[name]}" for name in
                   ("cb_confidentiality", "cb_integrity", "cb_availability", "cb_malicious")],
            "score": sev["score"], "level": SEVERITY_LEVEL[sev["level"]][lang],
            "adjustments": adjustments}


def letter_context(d: Dossier, impact: SubjectImpact, lang: str) -> dict[str, Any]:
    """The Art. 34 letter to one affected account."""
    taken, proposed = d.measures(lang)
    exposures = [e for e in d.view.exposures if e.account_id == impact.subject.account_id]
    return {
        "lang": lang, "incident": _incident(d), "controller": controller(d), "dpo": dpo(d, lang),
        "account": {"name": impact.subject.name or impact.subject.reference,
                    "reference": impact.subject.reference},
        "invoices": list(impact.invoice_numbers),
        "first": when(exposures[0].sent_at), "last": when(exposures[-1].sent_at),
        "recipient_count": len(impact.recipients),
        "categories": labels.category_labels(impact.data_categories, lang),
        "consequences": d.consequences(lang),
        "measures": taken,
        "next_measures": proposed,
    }


def deletion_context(d: Dossier, recipient: RecipientImpact, lang: str) -> dict[str, Any]:
    """The request to one unintended recipient to delete what it received."""
    received = [f"{when(e.sent_at)} — {e.invoice_number} — {e.message_id}"
                for e in d.view.exposures if normalize_address(e.email) == recipient.email]
    return {"lang": lang, "incident": _incident(d), "controller": controller(d),
            "dpo": dpo(d, lang), "email": recipient.email, "received": received}


def phishing_context(d: Dossier, lang: str) -> dict[str, Any]:
    return {"lang": lang, "incident": _incident(d), "controller": controller(d),
            "dpo": dpo(d, lang)}
