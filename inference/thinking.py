"""Separating a reasoning model's thinking from its answer while both stream."""

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"


def prompt_opens_thinking(prompt: str) -> bool:
    """Qwen3.5's template ends the prompt inside an open <think> block when thinking is on."""
    return prompt.rstrip().endswith(OPEN_TAG)


class ThinkingSplitter:
    """Feed generated text piece by piece; get (channel, text) pairs with the <think> tags removed.

    A tag can arrive split across pieces, so text that could still become a tag is held back until the next piece
    (or `flush`) decides it. Only the start of an answer may open a thinking block: later, "<think>" is just text.
    """

    def __init__(self, *, thinking: bool):
        self._channel = "thinking" if thinking else "answer"
        self._may_open = not thinking
        self._pending = ""

    def feed(self, text: str) -> list[tuple[str, str]]:
        self._pending += text
        parts: list[tuple[str, str]] = []
        while self._pending:
            if self._channel == "thinking":
                index = self._pending.find(CLOSE_TAG)
                if index < 0:
                    keep = _partial_tag_length(self._pending, CLOSE_TAG)
                    self._emit(parts, self._pending[: len(self._pending) - keep])
                    self._pending = self._pending[len(self._pending) - keep :]
                    break
                self._emit(parts, self._pending[:index])
                self._pending = self._pending[index + len(CLOSE_TAG) :].lstrip("\n")
                self._channel = "answer"
            elif self._may_open:
                start = self._pending.lstrip()
                if start.startswith(OPEN_TAG):
                    self._pending = start[len(OPEN_TAG) :]
                    self._channel, self._may_open = "thinking", False
                elif OPEN_TAG.startswith(start):
                    break  # whitespace or the tag's first characters: wait for more
                else:
                    self._may_open = False
            else:
                self._emit(parts, self._pending)
                self._pending = ""
        return parts

    def flush(self) -> list[tuple[str, str]]:
        parts: list[tuple[str, str]] = []
        self._emit(parts, self._pending)
        self._pending = ""
        return parts

    def _emit(self, parts: list[tuple[str, str]], text: str) -> None:
        if text:
            parts.append((self._channel, text))


def _partial_tag_length(text: str, tag: str) -> int:
    """How many characters at the end of `text` are the beginning of `tag`."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-length:]):
            return length
    return 0
