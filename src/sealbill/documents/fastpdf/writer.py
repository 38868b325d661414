"""PDF/A-3b file assembly for the compiled template: objects as bytes, one xref table.

The constant parts (the sRGB output intent and its profile, the XMP's fixed text, each font
face's objects) are prepared once per process; per invoice only the page's content stream,
the XML's embedded-file stream, the info dictionary and XMP (title, author, dates, language),
the ``/ID`` and the cross-reference table are written.

The layout matches what :mod:`sealbill.documents.embedded` reads quickly (one classic xref
table from object 0, no ``/Prev``, the name tree holding only ``factur-x.xml``, direct
``/Length`` integers, Flate only), and what the Typst path writes: embedded file
``factur-x.xml`` with ``/AFRelationship /Data`` listed in the catalog's ``/AF``, subtype
``text/xml``, Factur-X XMP properties with their PDF/A extension schema, an sRGB output intent.

Invariants:
- the bytes are a pure function of the arguments (dates are the issue date, /ID derives from
  the invoice number and the content);
- the Info dictionary and the XMP say the same title, author, tool and dates (PDF/A 6.6.2.3).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from typing import Final
from xml.sax.saxutils import escape

from sealbill.documents.facturx import _FX_SCHEMA, _FX_VALUES, FILENAME
from sealbill.documents.fastpdf.assets import srgb_profile
from sealbill.documents.fastpdf.canvas import PAGE_HEIGHT, PAGE_WIDTH
from sealbill.documents.fastpdf.fonts import Face

PRODUCER: Final = "sealbill"
HEADER: Final = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
_XMP_HEAD: Final = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:pdf="http://ns.adobe.com/pdf/1.3/" '
    'xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" '
    'xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/" '
    'xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#" '
    'xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">'
    "<pdfaid:part>3</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance>"
    "<dc:format>application/pdf</dc:format>"
    f"<xmp:CreatorTool>{PRODUCER}</xmp:CreatorTool><pdf:Producer>{PRODUCER}</pdf:Producer>"
    "<pdfaExtension:schemas><rdf:Bag>"
).encode() + _FX_SCHEMA + b"</rdf:Bag></pdfaExtension:schemas>"
_XMP_TAIL: Final = b"</rdf:Description>" + _FX_VALUES + b'</rdf:RDF></x:xmpmeta><?xpacket end="r"?>'


def pdf_string(text: str) -> bytes:
    """A PDF text string: literal when printable ASCII, else UTF-16BE with a BOM, in hex."""
    if text.isascii() and text.isprintable():
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return f"({escaped})".encode("ascii")
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


@lru_cache(maxsize=1)
def _profile_object() -> bytes:
    """Object 8, the output intent's sRGB profile: the same bytes in every file."""
    return _stream(8, b"/N 3 /Filter /FlateDecode", zlib.compress(srgb_profile()))


def _stream(number: int, head: bytes, data: bytes) -> bytes:
    return (b"%d 0 obj\n<<%s /Length %d>>\nstream\n" % (number, head, len(data))
            + data + b"\nendstream\nendobj\n")


def _obj(number: int, body: bytes) -> bytes:
    return b"%d 0 obj\n%s\nendobj\n" % (number, body)


# (id(face), first object number) -> (face, its objects written, their lengths)
_faces_written: dict[tuple[int, int], tuple[Face, bytes, tuple[int, ...]]] = {}


def _face_bytes(first: int, face: Face) -> tuple[bytes, tuple[int, ...]]:
    """:func:`_face_objects` joined, and the length of each, written once per process for
    each face and first number (a face lives as long as the process; the face is kept with
    its bytes, so an id is never taken for another face's)."""
    found = _faces_written.get((id(face), first))
    if found is None or found[0] is not face:
        objects = _face_objects(first, face)
        found = (face, b"".join(objects), tuple(len(body) for body in objects))
        _faces_written[(id(face), first)] = found
    return found[1], found[2]


def _face_objects(first: int, face: Face) -> list[bytes]:
    """Type0 font, CIDFont, descriptor, font program and ToUnicode of ``face``."""
    base = face.base_font.encode()
    return [
        _obj(first, b"<</Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H "
                    b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R>>" % (base, first + 1,
                                                                        first + 4)),
        _obj(first + 1, b"<</Type /Font /Subtype /CIDFontType0 /BaseFont /%s /CIDSystemInfo "
                        b"<</Registry (Adobe) /Ordering (Identity) /Supplement 0>> "
                        b"/FontDescriptor %d 0 R /DW 1000 /W %s>>" % (base, first + 2,
                                                                      face.cid_widths)),
        _obj(first + 2, b"<<%s /FontFile3 %d 0 R>>" % (face.descriptor, first + 3)),
        _stream(first + 3, b"/Subtype /OpenType /Filter /FlateDecode", face.program),
        _stream(first + 4, b"/Filter /FlateDecode", face.to_unicode),
    ]


def _xmp(title: str, author: str, language: str, stamp: str) -> bytes:
    variable = (
        f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{escape(title)}</rdf:li></rdf:Alt>'
        f"</dc:title><dc:creator><rdf:Seq><rdf:li>{escape(author)}</rdf:li></rdf:Seq>"
        f"</dc:creator><dc:language><rdf:Bag><rdf:li>{escape(language)}</rdf:li></rdf:Bag>"
        f"</dc:language><xmp:CreateDate>{stamp}</xmp:CreateDate>"
        f"<xmp:ModifyDate>{stamp}</xmp:ModifyDate>"
    )
    return _XMP_HEAD + variable.encode() + _XMP_TAIL


def assemble(*, content: bytes, faces: Iterable[tuple[str, Face]], xml: bytes, title: str,
             author: str, language: str, issued: date, number: str) -> bytes:
    """The whole file. ``content`` is the page's uncompressed content stream."""
    day = issued.strftime("%Y%m%d")
    pdf_date = f"(D:{day}000000Z)".encode()
    xmp_date = f"{issued.isoformat()}T00:00:00+00:00"
    # Level 1: a sixth of level 6's time for ~1 kB more per file.
    packed_content = zlib.compress(content, 1)
    packed_xml = zlib.compress(xml, 1)
    faces = list(faces)
    font_refs = b" ".join(b"/%s %d 0 R" % (name.encode(), 11 + 5 * k)
                          for k, (name, _) in enumerate(faces))
    objects = [
        _obj(1, b"<</Type /Catalog /Pages 2 0 R /Metadata 6 0 R /OutputIntents [7 0 R] "
                b"/AF [9 0 R] /Lang %s /Names <</EmbeddedFiles <</Names [(%s) 9 0 R]>>>>>>"
             % (pdf_string(language), FILENAME.encode())),
        _obj(2, b"<</Type /Pages /Kids [3 0 R] /Count 1>>"),
        _obj(3, b"<</Type /Page /Parent 2 0 R /MediaBox [0 0 %s %s] /Resources "
                b"<</Font <<%s>>>> /Contents 4 0 R>>"
             % (f"{PAGE_WIDTH:g}".encode(), f"{PAGE_HEIGHT:g}".encode(), font_refs)),
        _stream(4, b"/Filter /FlateDecode", packed_content),
        _obj(5, b"<</Title %s /Author %s /Creator (%s) /Producer (%s) /CreationDate %s "
                b"/ModDate %s>>" % (pdf_string(title), pdf_string(author), PRODUCER.encode(),
                                    PRODUCER.encode(), pdf_date, pdf_date)),
        _stream(6, b"/Type /Metadata /Subtype /XML", _xmp(title, author, language, xmp_date)),
        _obj(7, b"<</Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sRGB) "
                b"/Info (sRGB IEC61966-2.1) /DestOutputProfile 8 0 R>>"),
        _profile_object(),
        _obj(9, b"<</Type /Filespec /F (%s) /UF (%s) /AFRelationship /Data "
                b"/Desc (Factur-X invoice \\(EN 16931\\)) /EF <</F 10 0 R /UF 10 0 R>>>>"
             % (FILENAME.encode(), FILENAME.encode())),
        _stream(10, b"/Type /EmbeddedFile /Subtype /text#2Fxml /Params <</ModDate %s "
                    b"/Size %d>> /Filter /FlateDecode" % (pdf_date, len(xml)), packed_xml),
    ]
    parts = [HEADER, *objects]
    offsets = []
    at = len(HEADER)
    for body in objects:
        offsets.append(at)
        at += len(body)
    for k, (_, face) in enumerate(faces):  # five objects a face, written once a process
        written, lengths = _face_bytes(11 + 5 * k, face)
        parts.append(written)
        for length in lengths:
            offsets.append(at)
            at += length
    count = len(offsets) + 1
    parts.append(b"xref\n0 %d\n0000000000 65535 f \n" % count)
    parts += [b"%010d 00000 n \n" % offset for offset in offsets]
    first_id = hashlib.md5(number.encode(), usedforsecurity=False).hexdigest()
    second = hashlib.md5(packed_content, usedforsecurity=False)
    second.update(xml)
    parts.append(b"trailer\n<</Size %d /Root 1 0 R /Info 5 0 R /ID [<%s> <%s>]>>\n"
                 b"startxref\n%d\n%%%%EOF\n" % (count, first_id.encode(),
                                                second.hexdigest().encode(), at))
    return b"".join(parts)
