from embedding.encoders import chunking_tokenizer
from extract.chunking import chunk_document
from extract.parsing import parse_document


def _chunks(parsed, max_tokens=120, overlap=20):
    return chunk_document(
        document=parsed, tokenizer=chunking_tokenizer(""), max_tokens=max_tokens, overlap_tokens=overlap
    )


def test_chunks_respect_the_token_budget_and_point_back_into_the_text(python_docs):
    parsed = parse_document(data=(python_docs / "howto" / "logging.html").read_bytes(), filename="logging.html")
    chunks = _chunks(parsed)
    tokenizer = chunking_tokenizer("")

    assert len(chunks) > 20
    for chunk in chunks:
        assert chunk.text == parsed.text[chunk.char_start : chunk.char_end]
        assert 0 < chunk.token_count <= 120
        assert len(tokenizer.encode(chunk.text, add_special_tokens=False).ids) <= 120 + 2
    assert chunks[-1].char_end == len(parsed.text.rstrip())


def test_every_part_of_the_document_is_in_some_chunk(python_docs):
    parsed = parse_document(data=(python_docs / "faq" / "general.html").read_bytes(), filename="general.html")
    chunks = _chunks(parsed)

    covered = [False] * len(parsed.text)
    for chunk in chunks:
        covered[chunk.char_start : chunk.char_end] = [True] * (chunk.char_end - chunk.char_start)
    uncovered = "".join(ch for ch, seen in zip(parsed.text, covered) if not seen)
    assert uncovered.strip() == ""


def test_chunk_headings_name_the_section_they_start_in():
    text = "# Leave\n" + "Annual leave is 25 days. " * 60 + "\n# Sick pay\n" + "Sick pay starts on day one. " * 40
    chunks = _chunks(parse_document(data=text.encode(), filename="hr.md"), max_tokens=80, overlap=10)

    assert chunks[0].heading == "Leave"
    assert chunks[-1].heading == "Sick pay"
    assert chunks[-1].text.startswith("Sick pay starts on day one.")
    long_section_chunks = [c for c in chunks if c.heading == "Leave"]
    assert len(long_section_chunks) >= 3
    # Cuts inside a section land on sentence ends and overlap the next chunk.
    assert long_section_chunks[0].text.endswith(".")
    assert long_section_chunks[1].char_start < long_section_chunks[0].char_end


def test_tables_that_fit_are_never_cut():
    rows = "\n".join(f"<tr><td>Region {n}</td><td>{n * 1000} EUR</td><td>approved</td></tr>" for n in range(12))
    prose = "<p>" + "Budgets are reviewed every quarter by the finance committee. " * 12 + "</p>"
    markup = f"<html><body><h1>Budgets</h1>{prose}<table>{rows}</table>{prose}</body></html>"
    parsed = parse_document(data=markup.encode(), filename="budgets.html")
    ((table_start, table_end),) = parsed.whole_spans
    assert parsed.text[table_start:table_end].splitlines()[0] == "Region 0 | 0 EUR | approved"

    for max_tokens in (120, 150, 180):
        chunks = _chunks(parsed, max_tokens=max_tokens, overlap=20)
        holding = [c for c in chunks if c.char_start < table_end and c.char_end > table_start]
        assert any(c.char_start <= table_start and c.char_end >= table_end for c in holding), max_tokens
