"""An answer's Markdown as safe HTML, its citations [n] as links to the passages the model was given.

Everything in an answer may come from a hostile document by way of the model, so nothing in it may become markup of
its own: raw HTML is escaped by the Markdown parser, and what the parser does make is sanitised to a short list of
tags without attributes that could run script or load anything. The citation links, the only markup with htmx
attributes, are put in after sanitising, so the model cannot write one of its own.
"""

import re

import nh3
from django.urls import reverse
from django.utils.html import format_html
from markdown_it.token import Token

from kb.chat.citations import CITATION, answer_markdown, prose_texts

# Stand-ins for a citation between parsing and linking: private-use characters, which Markdown and the sanitiser
# leave alone, and which are removed from the answer first so that the model cannot write one.
_CITATION_START, _CITATION_END = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_CITATION_START}(\\d+){_CITATION_END}")

_ALLOWED_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"),
    *("strong", "em", "code", "pre", "ul", "ol", "li", "a"),
    *("table", "thead", "tbody", "tr", "th", "td"),
}


def answer_html(answer: str, *, chunk_by_number: dict[int, int]) -> str:
    """The answer rendered and sanitised; a citation of a passage the model was not given is removed."""
    answer = answer.replace(_CITATION_START, "").replace(_CITATION_END, "")
    tokens = answer_markdown.parse(answer)
    _citations_marked(tokens, chunk_by_number=chunk_by_number)
    rendered = answer_markdown.renderer.render(tokens, answer_markdown.options, {})
    sanitised = nh3.clean(
        rendered,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href"}, "ol": {"start"}},
        url_schemes={"http", "https", "mailto"},
        # The answer's only links into this site are its citations, added below.
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
    )
    return _PLACEHOLDER.sub(lambda match: _citation_link(int(match.group(1)), chunk_by_number), sanitised)


def _citations_marked(tokens: list[Token], *, chunk_by_number: dict[int, int]) -> None:
    """Citations in prose become placeholders; in code or in the text of a link they stay as written."""

    def placeholder(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number not in chunk_by_number:  # the model cited a passage it was not given: removed (and flagged)
            return ""
        return f"{_CITATION_START}{number}{_CITATION_END}"

    for text in prose_texts(tokens):
        text.content = CITATION.sub(placeholder, text.content)


def _citation_link(number: int, chunk_by_number: dict[int, int]) -> str:
    url = reverse("search:passage", args=[chunk_by_number[number]])
    return format_html(
        '<a class="citation" href="{}" hx-get="{}" hx-target="#passage-panel" hx-push-url="false">[{}]</a>',
        url,
        url,
        number,
    )
