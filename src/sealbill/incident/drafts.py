"""Write every draft of an incident, French and English, Markdown and PDF, with a manifest.

Layout under the output folder::

    {fr,en}/art33-notification.{md,pdf}
    {fr,en}/art34-letters/<account id>-<reference>.{md,pdf}       one per affected account
    {fr,en}/deletion-requests/recipient-<n>.{md,pdf}               one per unintended recipient
    {fr,en}/phishing-warning.{md,pdf}                              when anyone was affected
    manifest.json                                                  every file, whom it is for

Invariants:
- all drafts come from one :class:`Dossier`, read once: they state the same numbers;
- each PDF is typeset from its own Markdown file's text (see :mod:`sealbill.incident.pdf`);
- file names carry ids and references only, never an email address;
- the manifest lists every file written with its SHA-256, so what was sent can be proven.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sealbill.domain.blast_radius import RecipientImpact, SubjectImpact
from sealbill.incident import contexts
from sealbill.incident.facts import Dossier
from sealbill.incident.labels import LANGUAGES
from sealbill.incident.pdf import render_pdf
from sealbill.incident.render import render
from sealbill.outputs.files import write_output

TITLES = {
    "art33": {"en": "Personal data breach notification", "fr": "Notification de violation"},
    "art34": {"en": "Information about a personal data breach",
              "fr": "Information sur une violation de données"},
    "deletion": {"en": "Deletion request", "fr": "Demande de suppression"},
    "phishing": {"en": "Phishing warning", "fr": "Alerte hameçonnage"},
}


@dataclass(frozen=True)
class DraftFile:
    path: str
    kind: str
    lang: str
    format: str
    addressee: str
    sha256: str


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


class _Writer:
    def __init__(self, out: Path, dossier: Dossier, pdf: bool) -> None:
        self.out, self.dossier, self.pdf = out, dossier, pdf
        self.files: list[DraftFile] = []

    def write(self, relative: str, kind: str, lang: str, addressee: str, template: str,
              context: Mapping[str, Any]) -> None:
        markdown = render(template, context)
        self._save(f"{relative}.md", markdown.encode(), kind, lang, "md", addressee)
        if self.pdf:
            footer = (f"{self.dossier.org['legal_name']} — incident {self.dossier.incident['id']}"
                      f" — {TITLES[kind][lang]}")
            pdf = render_pdf(markdown, lang=lang, title=TITLES[kind][lang], footer=footer)
            self._save(f"{relative}.pdf", pdf, kind, lang, "pdf", addressee)

    def _save(self, relative: str, content: bytes, kind: str, lang: str, fmt: str,
              addressee: str) -> None:
        write_output(self.out / relative, content, root=self.out)
        self.files.append(DraftFile(relative, kind, lang, fmt, addressee,
                                    hashlib.sha256(content).hexdigest()))


def _letter(dossier: Dossier, impact: SubjectImpact, lang: str) -> dict[str, Any]:
    return contexts.letter_context(dossier, impact, lang)


def _deletion(dossier: Dossier, recipient: RecipientImpact, lang: str) -> dict[str, Any]:
    return contexts.deletion_context(dossier, recipient, lang)


def write_drafts(dossier: Dossier, out: Path, *, pdf: bool = True,
                 languages: tuple[str, ...] = LANGUAGES) -> list[DraftFile]:
    """Write the drafts and ``manifest.json``; return what was written."""
    writer = _Writer(out, dossier, pdf)
    view = dossier.view
    jobs: list[tuple[str, str, str, str, Callable[[str], dict[str, Any]]]] = [
        ("art33-notification", "art33", "supervisory authority", "art33",
         lambda lang: contexts.notification_context(dossier, lang))]
    for impact in view.subjects:
        name = f"art34-letters/{impact.subject.account_id}-{_safe_name(impact.subject.reference)}"
        jobs.append((name, "art34", f"account {impact.subject.reference}", "art34_letter",
                     partial(_letter, dossier, impact)))
    for number, recipient in enumerate(view.recipients, start=1):
        jobs.append((f"deletion-requests/recipient-{number:03d}", "deletion", recipient.email,
                     "deletion_request", partial(_deletion, dossier, recipient)))
    if view.has_leak:
        jobs.append(("phishing-warning", "phishing", "affected customers", "phishing_warning",
                     lambda lang: contexts.phishing_context(dossier, lang)))
    for lang in languages:
        for relative, kind, addressee, template, build in jobs:
            writer.write(f"{lang}/{relative}", kind, lang, addressee,
                         f"{template}.{lang}.md.j2", build(lang))
    manifest = {
        "incident_id": dossier.incident["id"],
        "missing_fields": list(dossier.missing),
        "files": [asdict(item) for item in writer.files],
    }
    write_output(out / "manifest.json", (json.dumps(manifest, indent=2, ensure_ascii=False)
                                         + "\n").encode("utf-8"), root=out)
    return writer.files
