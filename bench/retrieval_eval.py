"""Retrieval quality on the Python documentation: the product's evaluator (kb.evaluation) over a set file.

    .venv/bin/python bench/retrieval_eval.py [--set-file PATH] [--set-name NAME] [--faq]

The corpus is every HTML page of Debian's python3.11-doc, ingested by `bench/ingest_throughput.py --pages 0` into
var/bench (this script ingests the pages itself when that database is empty). The questions come from `--set-file`
(JSON Lines or CSV, evaluation/sets.py), by default `evaluation/sets/python-docs/questions.jsonl` where it exists,
else (or with `--faq`) the FAQ set built here: every FAQ question of `faq/*.html`, expecting the first sentences of
its entry (so a passage is relevant when it holds them, evaluation/matching.py). The set is imported into the product
(replacing its questions) and run by `manage.py kb_evaluate` as the bench user: keyword, dense and hybrid,
Recall@1/5/10, MRR@10, nDCG@10 and the "not in the sources" rates; every run stays in var/bench and is compared with
the previous one.

Caveat of the FAQ set: an entry's passages carry the question as their heading or text, which both retrievers see; it
measures how well each finds the right entry among ~18,000 passages, not robustness to paraphrase.
"""

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = ROOT / "var" / "bench"
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(BENCH_VAR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.pop("DATABASE_URL", None)

from bench.django_setup import django_setup  # noqa: E402

django_setup()

from django.core.management import call_command  # noqa: E402

from evaluation.corpora import PYTHON_DOCS_PAGES  # noqa: E402
from evaluation.matching import words_of  # noqa: E402
from evaluation.sets import EvalQuestion, ExpectedSpan, read_jsonl, write_jsonl  # noqa: E402
from extract.parsing import parse_document  # noqa: E402
from kb.accounts.models import Membership, User  # noqa: E402
from kb.accounts.services import department_create, membership_create, user_create  # noqa: E402
from kb.documents.models import Chunk, Collection, Document  # noqa: E402
from kb.documents.services import collection_create, document_upload, document_version_ingest  # noqa: E402
from kb.platform.actors import system_actor  # noqa: E402
from kb.platform.embedded_pg import server_stop  # noqa: E402

DOCS = Path("/usr/share/doc/python3.11/html")
SHARED_SET = ROOT / "evaluation" / "sets" / "python-docs" / "questions.jsonl"
SPAN_WORDS = 30  # the start of a FAQ entry's answer that a relevant passage must hold (most of it, in order)


def corpus_user() -> User:
    if not Document.objects.filter(original_name__startswith="faq/").exists():
        print("ingesting the whole Python documentation (about 20 minutes on 2 cores) ...", flush=True)
        department = department_create(acting_user=system_actor(), name="Bench")
        admin = user_create(acting_user=system_actor(), username="bench", password="bench-password-1")
        membership_create(acting_user=system_actor(), user=admin, department=department, role=Membership.Role.ADMIN)
        collection = collection_create(
            acting_user=system_actor(), name="Python docs", owner=department, visibility=Collection.Visibility.COMPANY
        )
        pages = sorted(p for p in DOCS.rglob("*.html") if "_static" not in p.parts)
        for number, page in enumerate(pages, start=1):
            version = document_upload(
                acting_user=admin,
                collection=collection,
                name=str(page.relative_to(DOCS)),
                data=page.read_bytes(),
                enqueue=False,
            )
            document_version_ingest(version_id=version.pk)
            if number % 50 == 0:
                print(f"  {number}/{len(pages)} pages", flush=True)
    return User.objects.get(username="bench")


def faq_set() -> list[EvalQuestion]:
    """Every FAQ entry as a question expecting the start of its answer (entries of a few words are left out)."""
    questions = []
    for page in sorted((DOCS / "faq").glob("*.html")):
        parsed = parse_document(data=page.read_bytes(), filename=page.name)
        for section in parsed.sections:
            if not section.heading.endswith("?"):
                continue
            answer = parsed.text[section.start : section.end].split("\n", 1)[-1]
            if len(words_of(answer)) < 8:  # "See the next question."
                continue
            span = " ".join(answer.split()[:SPAN_WORDS])
            expected = ExpectedSpan(document=str(page.relative_to(DOCS)), span=span)
            questions.append(EvalQuestion(question=section.heading, expected=(expected,)))
    unique = {question.question: question for question in questions}  # a heading asked twice: its last entry
    return list(unique.values())


def _renamed(questions: list[EvalQuestion], names: dict[str, str]) -> list[EvalQuestion]:
    return [
        replace(
            question,
            expected=tuple(
                replace(span, document=names.get(span.document, span.document)) for span in question.expected
            ),
        )
        for question in questions
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set-file", type=Path, help="JSON Lines or CSV questions (default: the shared set or FAQ)")
    parser.add_argument("--set-name", help="the set's name in the product (default: from the file's name)")
    parser.add_argument("--faq", action="store_true", help="the FAQ set built from faq/*.html, whatever else exists")
    arguments = parser.parse_args()
    call_command("migrate", verbosity=0)
    user = corpus_user()
    set_file = arguments.set_file or (SHARED_SET if SHARED_SET.exists() and not arguments.faq else None)
    if set_file == SHARED_SET:
        # The shared set names the demo's four pages as the demo uploads them ("general.html"); here every page is
        # uploaded under its path in the documentation ("faq/general.html").
        set_file = BENCH_VAR / "python-docs.jsonl"
        set_file.write_text(write_jsonl(_renamed(read_jsonl(SHARED_SET.read_text()), PYTHON_DOCS_PAGES)))
    if set_file is None:
        set_file = BENCH_VAR / "python-faq.jsonl"
        set_file.write_text(write_jsonl(faq_set()))
    set_name = arguments.set_name or ("Python FAQ" if set_file.name == "python-faq.jsonl" else set_file.stem)
    print(
        f"corpus: {Document.objects.count()} documents, {Chunk.objects.count()} passages; set: {set_file}", flush=True
    )
    call_command("kb_evaluate", set_name=set_name, import_file=set_file, user=user.username, department="Bench")
    server_stop(BENCH_VAR / "pg")


if __name__ == "__main__":
    main()
