"""PDF text cleanup (extract/pdf.py): what a PDF's line layout adds to its words is taken out again."""

from extract.pdf import text_cleaned


def test_a_word_hyphenated_at_a_line_end_is_whole_again():
    assert text_cleaned("the docu-\nmentation of the pack-\nage") == "the documentation of the package"


def test_a_hyphen_before_a_capital_or_inside_a_line_stays():
    assert text_cleaned("a Non-\nMaintainer Upload\nis a well-known co-\n-operation") == (
        "a Non-\nMaintainer Upload\nis a well-known co-\n-operation"
    )


def test_dot_leaders_of_a_table_of_contents_are_dropped_and_an_ellipsis_stays():
    assert text_cleaned("Best practices . . . . . . . 42\nWait...") == "Best practices   42\nWait..."
