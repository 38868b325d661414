"""The guard's reading of one outgoing message: its exact bytes, parsed back.

:func:`examine` turns the bytes a sender is about to hand to SMTP into
:class:`~sealbill.domain.guard.Examined` — the headers and decoded parts
(:mod:`sealbill.mail.readback`), the texts (subject, bodies) and what the Factur-X XML inside
the PDF says — and :func:`~sealbill.domain.guard.verdict` judges that against the facts read
fresh from the database, searching every text for the run's identifiers
(:mod:`sealbill.pipeline.delivery.identifier_search`). It reads only the bytes: it is done
before the sender takes the write lock, so senders run it side by side.

The PDF must be whole (:mod:`sealbill.pipeline.delivery.pdf_whole`: header, ``%%EOF``, a
``startxref`` pointing at a cross-reference section) before its XML is read, and the XML it
embeds must be, byte for byte, the one rendered with it (its SHA-256 against the ``xml``
document's, read fresh): a PDF rewritten with its stored digest updated to match still
carries an XML that is not the planned one.

Invariants: it never raises (a failure is recorded in ``Examined.error`` and refused by the
verdict: fail closed); nothing it returns comes from the objects the message was built from.

The XML is parsed by lxml (libxml2: about three times faster than ElementTree here), with
entity expansion and network access off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from lxml import etree

from sealbill.domain import guard
from sealbill.domain.identifiers import IdentifierSearch
from sealbill.mail.readback import parse_message
from sealbill.pipeline.delivery.compose import extract_facturx_xml
from sealbill.pipeline.delivery.pdf_whole import pdf_problem

XmlExtractor = Callable[[bytes], bytes]


class DamagedPdf(ValueError):
    """The attachment is not a whole PDF."""


def whole_pdf_xml(pdf: bytes) -> bytes:
    """The embedded Factur-X XML of a PDF that is whole (the guard's default reader)."""
    problem = pdf_problem(pdf)
    if problem:
        raise DamagedPdf(problem)
    return extract_facturx_xml(pdf)

_NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
# Every text node, in document order (element texts and tails; not comments, as ElementTree
# read it before): twice as fast as joining itertext(); plain strings (no "smart" string
# objects that know their parent, which the join never asks) are three times faster again.
_TEXT_NODES = etree.XPath("//text()", smart_strings=False)
_BODY_TYPES = (("text", "text/plain"), ("html", "text/html"))


def examine(outgoing: guard.Outgoing, extract_xml: XmlExtractor = whole_pdf_xml
            ) -> guard.Examined:
    """Parse the exact bytes back: headers, parts, the texts (subject, bodies) and what the
    XML in the PDF says. Never raises: a failure is recorded in ``error`` (and refused by the
    verdict)."""
    try:
        parsed = parse_message(outgoing.data)
        bodies: dict[str, str] = {"subject": parsed.subject}
        for kind, part_type in _BODY_TYPES:
            found = [p for p in parsed.parts if p.content_type == part_type]
            if len(found) == 1:
                bodies[kind] = found[0].payload.decode("utf-8", "replace")
        pdfs = [p for p in parsed.parts if p.content_type == "application/pdf"]
        xml = (read_xml_facts(pdfs[0].payload, extract_xml) if len(pdfs) == 1
               else guard.XmlFacts(error="no single PDF part"))
        return guard.Examined(outgoing, parsed, xml, bodies)
    except Exception as exc:  # fail closed: recorded, refused by the verdict
        return guard.Examined(outgoing, None, guard.XmlFacts(error="not examined"), {},
                              error=f"{type(exc).__name__}: {exc}")


def check(envelope: guard.Envelope, fresh: guard.Fresh, outgoing: guard.Outgoing,
          identifiers: IdentifierSearch | None,
          extract_xml: XmlExtractor = whole_pdf_xml) -> list[guard.Violation]:
    """Every violation of the guard's four rules; an empty list means this message may be
    sent. The same as ``verdict(envelope, fresh, examine(outgoing), identifiers)``."""
    return guard.verdict(envelope, fresh, examine(outgoing, extract_xml), identifiers)


def read_xml_facts(pdf: bytes, extract_xml: XmlExtractor = whole_pdf_xml
                   ) -> guard.XmlFacts:
    """The identity the Factur-X XML inside the PDF gives, and its text for the id search."""
    try:
        data = extract_xml(pdf)
        root = etree.fromstring(data, _PARSER)
    except Exception as exc:  # fail closed: no readable XML, no send
        return guard.XmlFacts(error=f"{type(exc).__name__}: {exc}")
    if root.getroottree().docinfo.internalDTD is not None:
        # entities are not expanded: an entity could hide text from the identifier search
        return guard.XmlFacts(error="the Factur-X XML declares a DTD")
    party = root.find(".//ram:ApplicableHeaderTradeAgreement/ram:BuyerTradeParty", _NS)
    return guard.XmlFacts(
        number=root.findtext("rsm:ExchangedDocument/ram:ID", namespaces=_NS),
        buyer_name=party.findtext("ram:Name", namespaces=_NS) if party is not None else None,
        buyer_id=party.findtext("ram:ID", namespaces=_NS) if party is not None else None,
        text=" ".join(_TEXT_NODES(root)),  # a space: text nodes never join into one token
        sha256=hashlib.sha256(data).hexdigest())
