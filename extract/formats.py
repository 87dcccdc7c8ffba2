"""Every file type the knowledge base accepts, in one table, and every question about a type answered from it.

Upload validation (`file_kind`), what the Documents page says it accepts (and its file picker's `accept`), the Search
page's type filter (`SEARCH_GROUPS`, `search_group_extensions`), which parser reads a file (`OFFICE_KINDS`), what is
expanded rather than stored (`is_archive`) and which files `kb_import` picks up from a folder all read `FORMATS`: a
type added there is accepted, listed, findable and imported everywhere at once.
"""

from dataclasses import dataclass
from pathlib import Path

from extract.types import DocumentRejected


@dataclass(frozen=True, kw_only=True)
class FileFormat:
    kind: str  # what the parsers call it: "markdown", "docx", "email", ...
    extensions: tuple[str, ...]  # lower case, with the dot
    label: str  # how the Documents page names it in the list of what it accepts: "Word"
    noun: str  # what a message about one such file calls it: "the DOCX is empty"
    group: str | None  # the key of the Search page's type filter that finds it; None: never a document itself
    office: bool = False  # binary or foreign: parsed by extract.office (the `unstructured` library), never decoded here
    archive: bool = False  # not a document itself: expanded, and its members are the documents


# The Search page's type filter, in menu order: the query value (links carry it, so it must not change) and label.
SEARCH_GROUPS = {
    "logs": "Logs",
    "pdf": "PDF",
    "office": "Office files",
    "web": "Web pages and Markdown",
    "mail": "E-mail",
    "text": "Plain text",
}

FORMATS = (
    FileFormat(kind="text", extensions=(".txt", ".text"), label="text", noun="text file", group="text"),
    FileFormat(kind="markdown", extensions=(".md", ".markdown"), label="Markdown", noun="Markdown file", group="web"),
    FileFormat(kind="html", extensions=(".html", ".htm"), label="HTML", noun="HTML page", group="web"),
    FileFormat(kind="log", extensions=(".log", ".jsonl", ".ndjson"), label="logs", noun="log", group="logs"),
    FileFormat(kind="pdf", extensions=(".pdf",), label="PDF", noun="PDF", group="pdf", office=True),
    FileFormat(kind="docx", extensions=(".docx",), label="Word", noun="DOCX", group="office", office=True),
    FileFormat(kind="pptx", extensions=(".pptx",), label="PowerPoint", noun="PPTX", group="office", office=True),
    FileFormat(kind="xlsx", extensions=(".xlsx",), label="Excel", noun="XLSX", group="office", office=True),
    FileFormat(kind="odt", extensions=(".odt",), label="OpenDocument text", noun="ODT", group="office", office=True),
    FileFormat(kind="csv", extensions=(".csv",), label="CSV", noun="CSV", group="office", office=True),
    FileFormat(kind="epub", extensions=(".epub",), label="EPUB", noun="EPUB", group="office", office=True),
    FileFormat(
        kind="rst",
        extensions=(".rst",),
        label="reStructuredText",
        noun="reStructuredText file",
        group="web",
        office=True,
    ),
    FileFormat(kind="email", extensions=(".eml",), label="e-mail", noun="e-mail", group="mail", office=True),
    FileFormat(kind="zip", extensions=(".zip",), label="ZIP archives", noun="ZIP archive", group=None, archive=True),
)

_BY_EXTENSION = {extension: file_format for file_format in FORMATS for extension in file_format.extensions}
# What a file may be called to be uploaded or imported: documents and archives, in the table's order.
ACCEPTED_EXTENSIONS = tuple(_BY_EXTENSION)
# What a document (not an archive) may be called; the rest is refused naming these.
DOCUMENT_EXTENSIONS = tuple(extension for extension, file_format in _BY_EXTENSION.items() if not file_format.archive)
ARCHIVE_EXTENSIONS = tuple(extension for extension, file_format in _BY_EXTENSION.items() if file_format.archive)
OFFICE_KINDS = frozenset(file_format.kind for file_format in FORMATS if file_format.office)


def _format_of(filename: str) -> FileFormat | None:
    return _BY_EXTENSION.get(Path(filename).suffix.lower())


def file_kind(filename: str) -> str:
    """The kind of document the file's name says it is; DocumentRejected, naming what is supported, otherwise."""
    file_format = _format_of(filename)
    if file_format is None or file_format.archive:
        extension = Path(filename).suffix.lower()
        supported = ", ".join(sorted(DOCUMENT_EXTENSIONS))
        raise DocumentRejected(f"'{extension or filename}' files are not supported yet (supported: {supported})")
    return file_format.kind


def is_email(filename: str) -> bool:
    """An e-mail, whose attachments become documents of their own."""
    file_format = _format_of(filename)
    return file_format is not None and file_format.kind == "email"


def is_archive(name: str) -> bool:
    """An archive, expanded into its members instead of stored."""
    return name.lower().endswith(ARCHIVE_EXTENSIONS)


def search_group_extensions(group: str) -> tuple[str, ...]:
    """The extensions of the documents that the Search page's type filter `group` finds."""
    if group not in SEARCH_GROUPS:
        raise ValueError(f"no search group {group!r}")
    return tuple(
        extension for file_format in FORMATS if file_format.group == group for extension in file_format.extensions
    )
