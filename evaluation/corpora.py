"""The documents of the shipped evaluation sets (`evaluation/sets/<name>/`), read from where Debian installs them.

Each set's README says which Debian package holds its corpus and how it was built; this module is the one place that
knows the paths, so the tests, the naive reference (`bench/naive_retrieval.py`) and whoever uploads a corpus into the
product read the same bytes under the same document names (the names the set's expected spans use).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SETS_DIR = Path(__file__).resolve().parent / "sets"
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
DEVELOPERS_REFERENCE_PDF = Path("/usr/share/developers-reference/developers-reference.pdf")
FAIL2BAN_LOGS = Path("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs")

# The demo's pages (kb/documents/management/commands/kb_seed_demo.py), under the names the demo uploads them with.
PYTHON_DOCS_PAGES = {
    "general.html": "faq/general.html",
    "design.html": "faq/design.html",
    "logging.html": "howto/logging.html",
    "sorting.html": "howto/sorting.html",
}
OFFICE_FILES = ("gitfaq.docx", "gittutorial.odt", "giteveryday.pptx")
FAIL2BAN_SAMPLES = ("sshd", "apache-auth", "postfix", "dovecot", "nginx-http-auth")  # the questions are about these
# Logs of other services beside them, so that retrieval must tell services apart; no question is about them, and none
# of them holds a user, address or event that a question names.
FAIL2BAN_DISTRACTORS = ("named-refused", "mysqld-auth", "squid", "mssql-auth", "murmur", "openhab", "grafana", "nagios")


class CorpusMissing(LookupError):
    """A set's documents are not on this machine; the message names the Debian package that installs them."""


@dataclass(frozen=True)
class Corpus:
    set_name: str
    documents: dict[str, bytes]  # original name -> the file's bytes


def _read(path: Path, package: str) -> bytes:
    if not path.is_file():
        raise CorpusMissing(f"{path} is missing: install the Debian package {package}")
    return path.read_bytes()


def _python_docs() -> dict[str, bytes]:
    return {name: _read(PYTHON_DOCS / page, "python3.11-doc") for name, page in PYTHON_DOCS_PAGES.items()}


def _pdf_manual() -> dict[str, bytes]:
    built = SETS_DIR / "pdf-manual" / "corpus" / DEVELOPERS_REFERENCE_PDF.name  # evaluation/sets/pdf-manual/build.sh
    path = built if built.is_file() else DEVELOPERS_REFERENCE_PDF
    return {path.name: _read(path, "developers-reference (or run evaluation/sets/pdf-manual/build.sh)")}


def _office() -> dict[str, bytes]:
    folder = SETS_DIR / "office" / "corpus"  # committed; evaluation/sets/office/build.sh makes them anew
    how = "git-doc and pandoc, then evaluation/sets/office/build.sh"
    return {name: _read(folder / name, how) for name in OFFICE_FILES}


def fail2ban_log_without_annotations(data: bytes) -> bytes:
    """A fail2ban sample as a machine would have logged it: without the `# failJSON` comment lines of its tests."""
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b"#"))


def _fail2ban_logs() -> dict[str, bytes]:
    return {
        f"{sample}.log": fail2ban_log_without_annotations(_read(FAIL2BAN_LOGS / sample, "fail2ban"))
        for sample in FAIL2BAN_SAMPLES + FAIL2BAN_DISTRACTORS
    }


CORPORA: dict[str, Callable[[], dict[str, bytes]]] = {
    "python-docs": _python_docs,
    "pdf-manual": _pdf_manual,
    "office": _office,
    "fail2ban-logs": _fail2ban_logs,
}


def set_names() -> list[str]:
    return list(CORPORA)


def questions_path(set_name: str) -> Path:
    return SETS_DIR / set_name / "questions.jsonl"


def corpus_of(set_name: str) -> Corpus:
    """The set's documents by original name; raises CorpusMissing naming the Debian package to install."""
    return Corpus(set_name=set_name, documents=CORPORA[set_name]())
