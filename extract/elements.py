"""From unstructured's elements to a `ParsedDocument`: the element texts joined with "\n", in sections.

A section starts at each title and, in paged formats, at each new page, slide or sheet, so a section's heading says
where it is: "Budget (page 3)"; sections are contiguous spans that cover the whole text. A table is one block of lines,
one row per line, cells joined by " | ". Running headers, footers and page breaks are left out.
"""

import re

from extract.types import ParsedDocument, Section

# Formats whose elements carry a page number worth putting in the heading, and what a "page" is called there.
_PAGE_WORDS = {"pdf": "page", "pptx": "slide", "xlsx": "sheet"}
_SKIPPED_CATEGORIES = {"PageBreak", "Header", "Footer", "PageNumber"}  # running boilerplate, not content
_WHITESPACE = re.compile(r"\s+")


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


def assemble(
    elements: list, kind: str, fallback_title: str, lead: list[str] | None = None, title: str | None = None
) -> ParsedDocument:
    page_word = _PAGE_WORDS.get(kind)
    blocks: list[tuple[str, object]] = [(line, None) for line in lead or []]
    for element in elements:
        if element.category in _SKIPPED_CATEGORIES:
            continue
        text = _element_text(element)
        if text:
            blocks.append((text, element))
    if title is None:
        title = next(
            (text for text, element in blocks if element is not None and element.category == "Title"), fallback_title
        )

    lines: list[str] = []
    sections: list[Section] = []
    tables: list[tuple[int, int]] = []
    page_starts: list[tuple[int, int]] = []
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
            if kind == "pdf":  # the only paged format whose original a reader can open at a page
                page_starts.append((page, position))
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
    return ParsedDocument(title=title, text=text, sections=sections, whole_spans=tables, page_starts=page_starts)
