"""Real PDFs written at test time: a few lines of PDF, text in the standard Helvetica font (nothing embedded), which
pdfminer and pdf.js read like any other PDF."""

import functools
import zlib
from pathlib import Path

from extract.types import ParsedDocument


def pdf_of_lines(pages: list[list[tuple[int, str]]]) -> bytes:
    """A real PDF: one page per list of (font size, line), Helvetica, top to bottom, a gap before each size change."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    kids = []
    for lines in pages:
        commands, y, previous = [], 740.0, None
        for size, line in lines:
            y -= size * (2.2 if previous not in (None, size) else 1.25)
            commands.append(f"BT /F1 {size} Tf 56 {y:.1f} Td ({escape(line)}) Tj ET")
            previous = size
        stream = zlib.compress("\n".join(commands).encode("cp1252", "replace"))
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % content
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{k} 0 R" for k in kids).encode(), len(kids))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def wrapped(paragraph: str, width: int = 95) -> list[str]:
    lines, line = [], ""
    for word in paragraph.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def faq_questions(faq: ParsedDocument, *, count: int) -> list[tuple[str, list[str]]]:
    """(heading, up to three paragraphs) for the first FAQ questions that have text."""
    sections = []
    for section in faq.sections:
        lines = faq.text[section.start : section.end].split("\n")
        paragraphs = [line for line in lines[1:] if line.strip()]
        if paragraphs and section.heading != faq.title:
            sections.append((section.heading, paragraphs[:3]))
    return sections[:count]


def faq_pdf(title: str, sections: list[tuple[str, list[str]]], *, paragraphs: int = 1) -> bytes:
    """Two FAQ questions per page with their first `paragraphs` paragraphs, the document title on top of the first."""
    pages = []
    for index in range(0, len(sections), 2):
        page = [(20, title)] if index == 0 else []
        for heading, texts in sections[index : index + 2]:
            page.append((15, heading))
            for paragraph in texts[:paragraphs]:
                page += [(10, line) for line in wrapped(paragraph)]
        pages.append(page)
    return pdf_of_lines(pages)


@functools.cache
def faq_handbook_pdf(python_docs: Path) -> tuple[bytes, list[tuple[str, list[str]]]]:
    """Six questions of the General Python FAQ with three paragraphs each, two questions a page: three pages of real
    text, with the questions it holds."""
    from extract.parsing import parse_document

    faq = parse_document(data=(python_docs / "faq" / "general.html").read_bytes(), filename="general.html")
    questions = faq_questions(faq, count=6)
    return faq_pdf(faq.title, questions, paragraphs=3), questions
