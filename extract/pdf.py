"""PDF: the text layer, read with pdfminer through unstructured's pieces, and OCR of pages without one.

Pages that have no text layer (scans) are read by tesseract where Debian's tesseract-ocr is installed. Headings are
told by type size where the PDF sets them larger than its body text. `unstructured` and pdfminer are imported inside
the functions: they are slow to load and only needed once a PDF arrives.
"""

import io
import re
import shutil
import subprocess

from extract.types import DocumentRejected, OfficeSupportUnavailable

# OCR of PDF pages without a text layer, only where Debian's tesseract-ocr is installed (tesseract-ocr-LANG per
# language). Rendering is by pypdfium2; a page takes a few seconds on two cores, hence the page limit.
_TESSERACT = "tesseract"
OCR_LANGUAGES = "eng"  # tesseract's "-l" value, e.g. "eng+deu"
OCR_DPI = 300
OCR_MAX_PAGES = 100
OCR_PAGE_TIMEOUT_S = 120

# A word hyphenated across a line break ("docu-\nmentation"): rejoined where a lower-case letter goes on, so that
# "Non-\nMaintainer" keeps its hyphen. Dot leaders of a table of contents (". . . . .") are dropped.
_HYPHENATED_LINE_BREAK = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_DOT_LEADER = re.compile(r"(?:\.\s+){3,}\.")

# A heading is set at least this much larger than the body text, and is no longer than a heading.
_HEADING_SIZE_RATIO = 1.15
_MAX_HEADING_CHARS = 200


def ocr_available() -> bool:
    return shutil.which(_TESSERACT) is not None


def partition_pdf(data: bytes, filename: str) -> list:
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
            raise DocumentRejected(
                f"{len(without_text)} pages have no text layer (a scan?); OCR is limited to "
                f"{OCR_MAX_PAGES} pages a document"
            )
        scanned, sizes = [], []
        for number in without_text:
            for element, size in _ocr_page(pdf[number - 1], number, filename):
                scanned.append(element)
                sizes.append(size)
    finally:
        pdf.close()
    elements += _headings_by_type_size(scanned, sizes)  # sizes in pixels: judged apart from the text layer's points
    return sorted(elements, key=lambda element: element.metadata.page_number)  # stable: keeps each page's order


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
                text = clean_extra_whitespace(text_cleaned(snippet))
                if not text.strip():
                    continue
                element = element_from_text(text, coordinates=points, coordinate_system=system)
                element.metadata = ElementMetadata(filename=filename, page_number=page_number)
                elements.append(element)
                sizes.append(_font_size(box))
    return _headings_by_type_size(elements, sizes)


def text_cleaned(text: str) -> str:
    """A text box's lines with words hyphenated at a line end rejoined and dot leaders dropped (no library we use
    does this: pdfminer, unstructured's cleaners and pdftotext keep both). Line breaks stay, for the caller."""
    return _DOT_LEADER.sub(" ", _HYPHENATED_LINE_BREAK.sub("", text))


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


def _ocr_page(page, page_number: int, filename: str) -> list[tuple[object, float]]:
    """tesseract's paragraphs of one page, each with the median height of its lines (for telling headings)."""
    from unstructured.cleaners.core import clean_extra_whitespace
    from unstructured.documents.elements import ElementMetadata
    from unstructured.partition.text import element_from_text

    image = page.render(scale=OCR_DPI / 72, grayscale=True).to_pil()
    png = io.BytesIO()
    image.save(png, format="PNG")
    try:
        result = subprocess.run(
            [_TESSERACT, "stdin", "stdout", "-l", OCR_LANGUAGES, "tsv"],
            input=png.getvalue(),
            capture_output=True,
            timeout=OCR_PAGE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise DocumentRejected(f"OCR of page {page_number} took over {OCR_PAGE_TIMEOUT_S} seconds") from error
    if result.returncode != 0:
        raise OfficeSupportUnavailable(
            f"tesseract failed on page {page_number}: {result.stderr.decode(errors='replace').strip()[:300]}"
        )
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
        text = clean_extra_whitespace(text_cleaned("\n".join(" ".join(line) for line in lines.values())))
        if text.strip():
            element = element_from_text(text)
            element.metadata = ElementMetadata(filename=filename, page_number=page_number)
            element.metadata.detection_origin = "tesseract"
            line_heights = sorted(heights.get(paragraph, [0]))
            elements.append((element, float(line_heights[len(line_heights) // 2]) or None))
    return elements


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
