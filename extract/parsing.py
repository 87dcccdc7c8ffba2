"""Turn an uploaded file into plain text split into titled sections: the entry point of extraction.

Markdown and plain text keep their text as written; HTML keeps the visible text of its main content, one block per
line. Sections are contiguous spans of that text, so chunk offsets point straight into it. Logs are kept whole for
`extract.logs`; office formats, PDF and e-mail go to `extract.office`.
"""

import re
from dataclasses import replace
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from extract.formats import OFFICE_KINDS, file_kind
from extract.logs import detect_log_format
from extract.office import parse_office_document
from extract.types import DocumentRejected, ParsedDocument, Section

_HTML_BLOCKS = [
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "pre",
    "li",
    "dt",
    "dd",
    "th",
    "td",
    "caption",
    "blockquote",
    "figcaption",
]
_HTML_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Linear: no two parts of the pattern can match the same characters (one with lazy and optional runs backtracked
# cubically: a heading line of 2,000 spaces held a worker for 6 s, one of 10 kB for minutes).
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})[ \t]+(\S.*)$", re.MULTILINE)


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentRejected("the file looks binary (it contains NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentRejected(f"the file is not valid UTF-8 text (byte {error.start})") from error


def parse_document(*, data: bytes, filename: str) -> ParsedDocument:
    return _without_nul_characters(_parsed(data=data, filename=filename))


def _without_nul_characters(parsed: ParsedDocument) -> ParsedDocument:
    """A NUL past the first 8 KiB (a log's padding after a crash, a PDF's or an e-mail header's text) would fail the
    passages' insert, as PostgreSQL text holds none: each becomes a space, which keeps every offset into the text."""
    return replace(
        parsed,
        title=parsed.title.replace("\x00", " "),
        text=parsed.text.replace("\x00", " "),
        sections=[replace(section, heading=section.heading.replace("\x00", " ")) for section in parsed.sections],
    )


def _parsed(*, data: bytes, filename: str) -> ParsedDocument:
    kind = file_kind(filename)
    if kind in OFFICE_KINDS:  # binary formats, never decoded as text here; `unstructured` loads on the first one
        return parse_office_document(data=data, filename=filename, kind=kind)
    fallback_title = Path(filename).stem
    if kind == "log":
        return _parse_log_file(data, fallback_title)
    text = _decode(data)
    if kind == "text" and (log_format := detect_log_format(text)):
        return ParsedDocument(
            title=fallback_title,
            text=text,
            sections=[Section(fallback_title, 0, len(text))],
            is_log=True,
            log_format=log_format,
        )
    if kind == "html":
        parsed = _parse_html(text, fallback_title)
    elif kind == "markdown":
        parsed = _parse_markdown(text, fallback_title)
    else:
        parsed = ParsedDocument(title=fallback_title, text=text, sections=[Section(fallback_title, 0, len(text))])
    if not parsed.text.strip():
        raise DocumentRejected("the file contains no text")
    return parsed


def _parse_log_file(data: bytes, title: str) -> ParsedDocument:
    if b"\x00" in data[:8192]:
        raise DocumentRejected("the file looks binary (it contains NUL bytes), not a log")
    # Logs often carry a stray byte from another encoding; one bad byte must not cost the whole file.
    text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise DocumentRejected("the file contains no text")
    return ParsedDocument(
        title=title, text=text, sections=[Section(title, 0, len(text))], is_log=True, log_format=detect_log_format(text)
    )


def _parse_markdown(text: str, fallback_title: str) -> ParsedDocument:
    headings = list(_MARKDOWN_HEADING.finditer(text))
    sections: list[Section] = []
    if not headings or headings[0].start() > 0:
        sections.append(Section(fallback_title, 0, headings[0].start() if headings else len(text)))
    for index, match in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        sections.append(Section(_markdown_heading_text(match.group(2)), match.start(), end))
    title = next((_markdown_heading_text(m.group(2)) for m in headings if len(m.group(1)) == 1), fallback_title)
    return ParsedDocument(title=title, text=text, sections=[s for s in sections if s.end > s.start])


def _markdown_heading_text(written: str) -> str:
    """A heading's text without its optional closing run of #s, which CommonMark takes only after a space ("C#")."""
    text = written.rstrip()
    without_closing = text.rstrip("#")
    if without_closing != text and without_closing[-1:] in {" ", "\t"}:
        text = without_closing.rstrip()
    return text


def _content_blocks(root: Tag) -> list[Tag]:
    """Tables whole, and otherwise the innermost blocks: a list item with paragraphs is those paragraphs."""
    return [
        element
        for element in root.find_all([*_HTML_BLOCKS, "table"])
        if not element.find_parent("table") and (element.name == "table" or not element.find(_HTML_BLOCKS))
    ]


def _table_rows(table: Tag) -> str:
    rows = (
        " | ".join(" ".join(cell.get_text(" ").split()) for cell in row.find_all(["td", "th"]))
        for row in table.find_all("tr")
    )
    return "\n".join(row for row in rows if row.strip(" |"))


def _parse_html(markup: str, fallback_title: str) -> ParsedDocument:
    soup = BeautifulSoup(markup, "html.parser")
    for hidden in soup.select(
        "script, style, nav, header, footer, noscript, a.headerlink, div.sphinxsidebar, div.related, div.footer"
    ):
        hidden.decompose()
    root = soup.select_one("[role=main]") or soup.body or soup
    title_tag = soup.find("title")
    first_heading = root.find("h1")
    title = (
        (first_heading.get_text(" ", strip=True) if first_heading else "")
        or (title_tag.get_text(" ", strip=True) if title_tag else "")
        or fallback_title
    )

    lines: list[str] = []
    sections: list[Section] = []
    tables: list[tuple[int, int]] = []
    position = 0
    current_heading, current_start = title, 0
    for block in _content_blocks(root):
        if block.name == "table":
            block_text = _table_rows(block)
            tables.append((position, position + len(block_text)))
        elif block.name == "pre":
            block_text = block.get_text()
        else:
            block_text = " ".join(block.get_text(" ").split())
        if not block_text.strip():
            continue
        if block.name in _HTML_HEADINGS:
            if position > current_start:
                sections.append(Section(current_heading, current_start, position))
            current_heading, current_start = block_text, position
        lines.append(block_text)
        position += len(block_text) + 1
    text = "\n".join(lines)
    if len(text) > current_start:
        sections.append(Section(current_heading, current_start, len(text)))
    return ParsedDocument(title=title, text=text, sections=sections, whole_spans=tables)
