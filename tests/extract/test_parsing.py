import pytest

from extract.parsing import parse_document
from extract.types import DocumentRejected


def test_markdown_sections_follow_headings_and_cover_the_text():
    text = "Intro line.\n# Expenses\nClaim within 30 days.\n## Travel\nBook through the portal.\n"
    parsed = parse_document(data=text.encode(), filename="policy.md")

    assert parsed.title == "Expenses"
    assert [s.heading for s in parsed.sections] == ["policy", "Expenses", "Travel"]
    assert parsed.sections[0].start == 0 and parsed.sections[-1].end == len(text)
    assert text[parsed.sections[2].start : parsed.sections[2].end].startswith("## Travel")


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("## Travel ##", "Travel"),
        ("# C#", "C#"),
        ("#   Spaced   out  ", "Spaced   out"),
        ("# a" + " " * 3000 + "b", "a" + " " * 3000 + "b"),
        ("### ###", "###"),
    ],
    ids=["closing hashes", "a hash in the text", "spaces around", "a long run of spaces", "hashes only"],
)
def test_a_markdown_heading_is_its_text_without_the_closing_hashes(line, heading):
    parsed = parse_document(data=f"Intro.\n{line}\nBody.\n".encode(), filename="notes.md")

    assert [section.heading for section in parsed.sections] == ["notes", heading]


def test_a_hash_alone_on_its_line_is_no_heading_of_the_next_line():
    parsed = parse_document(data=b"Intro.\n#\nNot a heading.\n", filename="notes.md")

    assert [section.heading for section in parsed.sections] == ["notes"]


def test_python_docs_html_keeps_main_text_and_headings_but_not_navigation(python_docs):
    parsed = parse_document(data=(python_docs / "faq" / "design.html").read_bytes(), filename="design.html")

    assert parsed.title == "Design and History FAQ"
    headings = [section.heading for section in parsed.sections]
    assert "Why does Python use indentation for grouping of statements?" in headings
    assert "Guido van Rossum believes that using indentation for grouping" in parsed.text
    assert "¶" not in parsed.text
    assert "Navigation" not in parsed.text
    for section in parsed.sections:
        assert parsed.text[section.start : section.end].startswith(section.heading) or section.start == 0


@pytest.mark.parametrize(
    ("filename", "content", "reason"),
    [
        ("setup.exe", b"MZ\x90\x00", "'.exe' files are not supported yet"),
        ("notes.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
        ("latin1.txt", "Gr\u00fc\u00dfe aus K\u00f6ln".encode("latin-1"), "not valid UTF-8"),
        ("blank.md", b"   \n\n\t", "contains no text"),
        ("empty.html", b"<html><body><script>x()</script></body></html>", "contains no text"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason(filename, content, reason):
    with pytest.raises(DocumentRejected, match=reason):
        parse_document(data=content, filename=filename)
