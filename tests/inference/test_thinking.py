from inference.thinking import ThinkingSplitter, prompt_opens_thinking


def _split(pieces, *, thinking):
    splitter = ThinkingSplitter(thinking=thinking)
    parts = [part for piece in pieces for part in splitter.feed(piece)] + splitter.flush()
    joined: dict[str, str] = {}
    for channel, text in parts:
        joined[channel] = joined.get(channel, "") + text
    return joined


def test_a_prompt_left_inside_think_starts_in_the_thinking_channel_and_tags_split_across_pieces_are_removed():
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n")
    assert _split(["The user asks", " about 2+2.</th", "ink>\n\nIt is ", "4."], thinking=True) == {
        "thinking": "The user asks about 2+2.",
        "answer": "It is 4.",
    }


def test_an_answer_that_opens_with_a_think_block_is_split_too():
    assert _split(["<th", "ink>check the passages</think>\n\n", "See [1]."], thinking=False) == {
        "thinking": "check the passages",
        "answer": "See [1].",
    }


def test_think_written_later_in_an_answer_is_plain_text():
    assert _split(["Use the <think> tag ", "in prompts."], thinking=False) == {
        "answer": "Use the <think> tag in prompts."
    }


def test_quick_mode_output_passes_through_untouched():
    assert not prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert _split(["  Berlin", " is the capital."], thinking=False) == {"answer": "  Berlin is the capital."}
