"""Evaluation sets on disk: JSON Lines (one question per line) or CSV, both read and written here.

A question names what answers it as text spans of documents (a document's original name and a sentence or two of
its text), not as chunk ids, so that re-chunking or re-ingesting does not invalidate it. A question the documents do
not answer has no spans and `unanswerable` set: the right outcome is "not in the sources".

JSON Lines: {"question": "...", "expected": [{"document": "faq/design.html", "span": "..."}], "facts": ["..."],
             "unanswerable": false}
CSV: question, document, span, facts, unanswerable — one row per expected span (a question's rows follow each other;
     facts separated by " | " on its first row), unanswerable "yes" on a question's only row.
"""

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field


class SetFormatError(ValueError):
    """A set file that cannot be read; the message names the line."""


@dataclass(frozen=True)
class ExpectedSpan:
    document: str  # the document's original name, as uploaded ("faq/design.html", "auth.log")
    span: str


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    expected: tuple[ExpectedSpan, ...] = ()
    facts: tuple[str, ...] = ()  # what a good answer must state
    unanswerable: bool = False
    notes: str = field(default="", compare=False)

    def __post_init__(self):
        # A JSON Lines file can hold any JSON value where text is expected; it is named here, not met later.
        texts = [("the question", self.question), ("notes", self.notes)]
        texts += [("a fact", fact) for fact in self.facts]
        texts += [
            (name, value) for e in self.expected for name, value in (("a document", e.document), ("a span", e.span))
        ]
        for name, value in texts:
            if not isinstance(value, str):
                raise SetFormatError(f"{name} is {type(value).__name__}, not text")
        if not isinstance(self.unanswerable, bool):
            raise SetFormatError(f"unanswerable is {type(self.unanswerable).__name__}, not true or false")
        if not self.question.strip():
            raise SetFormatError("a question is empty")
        if self.unanswerable and self.expected:
            raise SetFormatError(f"{self.question!r} is marked unanswerable but names expected spans")
        if not self.unanswerable and not self.expected:
            raise SetFormatError(f"{self.question!r} names no expected span and is not marked unanswerable")


def read_jsonl(text: str) -> list[EvalQuestion]:
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            for name in ("expected", "facts"):
                if not isinstance(row.get(name, []), list):
                    raise SetFormatError(f"{name} is {type(row[name]).__name__}, not a list")
            questions.append(
                EvalQuestion(
                    question=row["question"],
                    expected=tuple(
                        ExpectedSpan(document=e["document"], span=e["span"]) for e in row.get("expected", ())
                    ),
                    facts=tuple(row.get("facts", [])),
                    unanswerable=row.get("unanswerable", False),
                    notes=row.get("notes", ""),
                )
            )
        except (TypeError, AttributeError):
            raise SetFormatError(f"line {number}: a field has the wrong type") from None
        except RecursionError:  # json's parser ran out of stack: no question is nested like that
            raise SetFormatError(f"line {number}: nested too deep to be a question") from None
        except (ValueError, KeyError) as error:  # SetFormatError and json's errors are ValueErrors
            raise SetFormatError(f"line {number}: {error}") from None
    return questions


def write_jsonl(questions: Iterable[EvalQuestion]) -> str:
    lines = []
    for question in questions:
        row = {
            "question": question.question,
            "expected": [{"document": e.document, "span": e.span} for e in question.expected],
            "facts": list(question.facts),
            "unanswerable": question.unanswerable,
        }
        if question.notes:
            row["notes"] = question.notes
        lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("question", "document", "span", "facts", "unanswerable")


def read_csv(text: str) -> list[EvalQuestion]:
    reader = csv.DictReader(io.StringIO(text))
    missing = set(CSV_COLUMNS[:3]) - set(reader.fieldnames or ())
    if missing:
        raise SetFormatError(f"the header lacks {', '.join(sorted(missing))}")
    grouped: dict[str, dict] = {}
    try:
        rows = list(reader)
    except csv.Error as error:  # a field past the csv module's limit, a NUL in older Pythons, a stray quote
        raise SetFormatError(f"line {reader.line_num + 1}: {error}") from None  # the line it could not finish
    for number, row in enumerate(rows, start=2):
        text_of_question = (row.get("question") or "").strip()
        if not text_of_question:
            raise SetFormatError(f"line {number}: the question is empty")
        entry = grouped.setdefault(text_of_question, {"expected": [], "facts": (), "unanswerable": False})
        if (row.get("unanswerable") or "").strip().lower() in {"yes", "true", "1"}:
            entry["unanswerable"] = True
        if (row.get("span") or "").strip():
            entry["expected"].append(
                ExpectedSpan(document=(row.get("document") or "").strip(), span=row["span"].strip())
            )
        if (row.get("facts") or "").strip():
            entry["facts"] = tuple(fact.strip() for fact in row["facts"].split(" | ") if fact.strip())
    try:
        return [
            EvalQuestion(question=q, expected=tuple(e["expected"]), facts=e["facts"], unanswerable=e["unanswerable"])
            for q, e in grouped.items()
        ]
    except SetFormatError as error:
        raise SetFormatError(str(error)) from None


def write_csv(questions: Iterable[EvalQuestion]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for question in questions:
        facts = " | ".join(question.facts)
        if question.unanswerable:
            writer.writerow([question.question, "", "", facts, "yes"])
        for number, expected in enumerate(question.expected):
            writer.writerow([question.question, expected.document, expected.span, facts if number == 0 else "", ""])
    return out.getvalue()
