"""kb/search/templatetags/highlight.py: the query's words marked in a passage that stays escaped."""

from kb.search.templatetags.highlight import highlight


def test_words_are_marked_where_they_start_a_word_and_everything_else_is_escaped():
    marked = highlight('Amplifiers of R&D "quotes" <b>here</b>', "amp quotes")

    assert marked == "Amplifiers of R&amp;D &quot;<mark>quotes</mark>&quot; &lt;b&gt;here&lt;/b&gt;".replace(
        "Amplifiers", "<mark>Amp</mark>lifiers"
    )


def test_a_word_that_is_part_of_an_escape_leaves_the_escape_whole():
    for word in ("amp", "quot"):
        assert highlight('R&D "x" <y>', word) == "R&amp;D &quot;x&quot; &lt;y&gt;"
