"""Drafts: every Art. 33 field in both languages, explicit gaps, letters that do not cross."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pypdf
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealbill.domain.breach_notice import FIELD_LABELS
from sealbill.pipeline.incident import actions as pipeline
from sealbill.store.schema import accounts
from tests.integration.incident.expected import LABELS
from tests.integration.incident.world import at, swapped_world


def complete_incident(engine: Engine, org_id: int) -> int:
    incident_id = pipeline.open_incident(engine, org_id, title="invoices to other customers",
                                         aware_at=at(24 * 60), scope=pipeline.Scope(),
                                         actor="dpo", pause=True)
    pipeline.update(engine, org_id, incident_id, pipeline.FactsUpdate(
        facts={"cause": "a data migration swapped billing contacts between accounts",
               "detection": "two customers reported receiving another company's invoice"},
        delay_reason="the migration's reach was only known after replaying the ledger",
        measures_proposed=("verify every billing contact again before the next run",)),
        actor="dpo")
    pipeline.assess(engine, org_id, incident_id, changes={}, justifications={}, actor="dpo")
    pipeline.decide(engine, org_id, incident_id, notify=True, reason="financial data disclosed",
                    communication="planned", actor="dpo")
    return incident_id


def test_the_notification_states_every_required_field_in_both_languages(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    world = swapped_world(sqlite_engine)
    incident_id = complete_incident(sqlite_engine, world.org_id)

    d, files = pipeline.generate_drafts(sqlite_engine, world.org_id, incident_id, tmp_path,
                                        actor="dpo", pdf=False)

    assert d.missing == ()
    assert set(LABELS["en"]) == set(FIELD_LABELS) == set(LABELS["fr"])
    for lang, labels in LABELS.items():
        text = (tmp_path / lang / "art33-notification.md").read_text()
        absent = [key for key, label in labels.items() if label not in text]
        assert absent == [], f"{lang}: fields not stated: {absent}"
        assert "MISSING" not in text and "MANQUANT" not in text
        assert "Dana Protect" in text and "dpo@acme.test" in text
        assert "3.25" in text  # the ENISA score: 3 x 1 + 0.25
        assert "a data migration swapped billing contacts" in text
    en = (tmp_path / "en" / "art33-notification.md").read_text()
    fr = (tmp_path / "fr" / "art33-notification.md").read_text()
    assert "Germany (DE)" in en and "Allemagne (DE)" in fr
    assert "sending halted for the organization (kill switch)" in en
    assert "envois suspendus pour l'organisation" in fr
    assert "**Approximate number of data subjects:** 2" in en
    assert "payment method (masked)" in en and "moyen de paiement (masqué)" in fr
    assert "planned" in en and "prévue" in fr
    kinds = sorted({(f.kind, f.lang) for f in files})
    assert kinds == [(k, lang) for k in ("art33", "art34", "deletion", "phishing")
                     for lang in ("en", "fr")]


def test_a_missing_dpo_and_missing_facts_are_said_explicitly(sqlite_engine: Engine,
                                                             tmp_path: Path) -> None:
    world = swapped_world(sqlite_engine, dpo=False)
    incident_id = pipeline.open_incident(sqlite_engine, world.org_id, title="leak",
                                         aware_at=at(24 * 60), scope=pipeline.Scope(),
                                         actor="dpo")

    d, _ = pipeline.generate_drafts(sqlite_engine, world.org_id, incident_id, tmp_path,
                                    actor="dpo", pdf=False)

    assert {"dpo", "cause", "detection", "severity", "communication"} <= set(d.missing)
    en = (tmp_path / "en" / "art33-notification.md").read_text()
    fr = (tmp_path / "fr" / "art33-notification.md").read_text()
    dpo_line = next(line for line in en.splitlines() if "Data protection officer" in line)
    assert "**MISSING" in dpo_line and "dpo_email" in dpo_line
    assert "MANQUANT" in next(line for line in fr.splitlines() if "Délégué" in line)
    assert f"sealbill incident update {incident_id} --cause TEXT" in en
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert "dpo" in manifest["missing_fields"]
    letter = (tmp_path / "en" / "art34-letters" / f"{world.accounts['ACC-1']}-ACC-1.md")
    assert "**MISSING" in letter.read_text()


def test_letters_name_no_recipient_and_deletion_requests_name_no_customer(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    world = swapped_world(sqlite_engine)
    incident_id = complete_incident(sqlite_engine, world.org_id)

    d, files = pipeline.generate_drafts(sqlite_engine, world.org_id, incident_id, tmp_path,
                                        actor="dpo", pdf=False)

    letters = {f.addressee: (tmp_path / f.path).read_text() for f in files
               if f.kind == "art34" and f.lang == "en"}
    assert sorted(letters) == ["account ACC-1", "account ACC-2"]
    for text in letters.values():
        assert "@one.test" not in text and "@two.test" not in text
    requests = {f.addressee: (tmp_path / f.path).read_text() for f in files
                if f.kind == "deletion" and f.lang == "fr"}
    assert sorted(requests) == ["ann@one.test", "bob@two.test"]
    acc1_invoice = next(e.invoice_number for e in d.view.exposures
                        if e.account_reference == "ACC-1")
    assert acc1_invoice in requests["bob@two.test"]
    assert acc1_invoice not in requests["ann@one.test"]
    assert all("Customer ACC" not in text for text in requests.values())
    assert not any("@" in f.path for f in files)


def test_the_pdf_says_what_the_markdown_says_and_typesets_hostile_text_as_text(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    world = swapped_world(sqlite_engine, dpo=False)
    hostile = 'Evil #panic("x") *bold* [a](b) $x$ <y> `z`'
    with sqlite_engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == world.accounts["ACC-1"])
                     .values(name=hostile))
    incident_id = pipeline.open_incident(sqlite_engine, world.org_id, title="leak #2 *urgent*",
                                         aware_at=at(24 * 60), scope=pipeline.Scope(),
                                         actor="dpo")

    _, files = pipeline.generate_drafts(sqlite_engine, world.org_id, incident_id, tmp_path,
                                        actor="dpo")

    pdf_text = _pdf_text(tmp_path / "en" / "art33-notification.pdf")
    assert "MISSING" in pdf_text and "Data protection officer" in pdf_text
    assert "leak #2 *urgent*" in pdf_text
    letter = next(f for f in files if f.kind == "art34" and f.format == "pdf" and f.lang == "en"
                  and f.addressee == "account ACC-1")
    assert '#panic("x") *bold* [a](b) $x$ <y> `z`' in _pdf_text(tmp_path / letter.path)
    assert {f.format for f in files} == {"md", "pdf"}


def _pdf_text(path: Path) -> str:
    return " ".join(" ".join((page.extract_text() or "").split())
                    for page in pypdf.PdfReader(path).pages)


def test_an_incident_without_unintended_recipient_gets_only_the_notification_draft(
        sqlite_engine: Engine, tmp_path: Path) -> None:
    world = swapped_world(sqlite_engine)
    incident_id = pipeline.open_incident(sqlite_engine, world.org_id, title="false alarm",
                                         aware_at=at(24 * 60),
                                         scope=pipeline.Scope(window=(at(8), at(12))),
                                         actor="dpo")

    d, files = pipeline.generate_drafts(sqlite_engine, world.org_id, incident_id, tmp_path,
                                        actor="dpo", pdf=False)

    assert {f.kind for f in files} == {"art33"}
    assert not d.view.has_leak
    text = (tmp_path / "en" / "art33-notification.md").read_text()
    assert "**Approximate number of data subjects:** 0" in text


def test_the_clock_runs_from_awareness_not_from_opening(sqlite_engine: Engine) -> None:
    world = swapped_world(sqlite_engine)
    incident_id = pipeline.open_incident(sqlite_engine, world.org_id, title="late opening",
                                         aware_at=at(0), scope=pipeline.Scope(), actor="dpo")

    d = pipeline.dossier(sqlite_engine, world.org_id, incident_id, now=at(0))

    assert d.clock.deadline == at(0) + timedelta(hours=72)
