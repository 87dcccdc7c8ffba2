"""What every parser returns or raises, in a module of its own so that the parsers need not import each other."""

from dataclasses import dataclass, field


class DocumentRejected(ValueError):
    """The file cannot be ingested; the message is shown to the admin as the reason."""


class OfficeSupportUnavailable(RuntimeError):
    """This machine lacks part of the office-format set-up; the document itself may be fine."""


@dataclass(frozen=True)
class Section:
    heading: str
    start: int
    end: int


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    text: str
    sections: list[Section]
    # Character spans (tables) that a chunk boundary must not cut when they fit in one chunk.
    whole_spans: list[tuple[int, int]] = field(default_factory=list)
    # Log files are chunked into time windows of records rather than by sections.
    is_log: bool = False
    log_format: str | None = None
    # PDFs only: (page number, offset in `text` where that page's text starts), in order; pages without text are
    # absent. Lets a passage be shown on its page.
    page_starts: list[tuple[int, int]] = field(default_factory=list)
