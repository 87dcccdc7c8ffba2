"""Where an answer cites its passages: [n] in its prose, as Markdown reads it — not in code, where "[0]" is an index,
nor in a link's text. The record's citations and the rendered links come from this one reading."""

import re
from collections.abc import Iterator

from markdown_it import MarkdownIt
from markdown_it.token import Token

CITATION = re.compile(r"\[(\d{1,3})\]")

answer_markdown = (
    # `breaks`: a single newline stays a line break, as it looked while the answer streamed in as plain text.
    MarkdownIt("commonmark", {"html": False, "breaks": True})
    .enable("table")
    # A reference definition `[1]: https://…` would turn every citation [1] into a link the model chose; an image
    # would be fetched on display, sending whatever the model put in its URL to another host.
    .disable(["reference", "image"])
)


def prose_texts(tokens: list[Token]) -> Iterator[Token]:
    """The text tokens of the parsed answer that may hold citations: outside code and outside a link's text."""
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        link_depth = 0
        for child in token.children:
            if child.type == "link_open":
                link_depth += 1
            elif child.type == "link_close":
                link_depth -= 1
            elif child.type == "text" and link_depth == 0:
                yield child


def cited_numbers(answer: str) -> list[int]:
    """The numbers the answer cites, each once, in order of first citation."""
    numbers = (
        int(number) for text in prose_texts(answer_markdown.parse(answer)) for number in CITATION.findall(text.content)
    )
    return list(dict.fromkeys(numbers))
