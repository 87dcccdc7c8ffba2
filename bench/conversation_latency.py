"""First token and total time of a fresh question and of its follow-up, through the app's whole answer path.

Each conversation asks a question in an employee's words, then a follow-up that depends on it, as `answer_stream`
answers the ask page (retrieval, packing into the model's budget, the model, the record). Times come from the query
records: retrieval, packing, first token and total; generation is total less first token. The follow-up's
documents are often the same as the question's, so its prompt starts with the same tokens and the engine's prefix
cache (llama.cpp's and vLLM's) skips their prefill.

Corpus: three pages of Debian's python3.11-doc FAQ (general, design, programming), ingested into var/bench-chat.
The model is the configured one: llama.cpp in this process, or the serving process at KB_INFERENCE_URL.

    .venv/bin/python bench/conversation_latency.py
"""

import asyncio
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(ROOT / "var" / "bench-chat")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.pop("DATABASE_URL", None)

from bench.django_setup import django_setup  # noqa: E402

django_setup()

from django.core.management import call_command  # noqa: E402

from kb.accounts.models import Membership, User  # noqa: E402
from kb.accounts.services import department_create, membership_create, user_create  # noqa: E402
from kb.audit.models import QueryRecord  # noqa: E402
from kb.chat.services import answer_stream, question_create  # noqa: E402
from kb.documents.models import Collection, Document  # noqa: E402
from kb.documents.services import collection_create, document_upload, document_version_ingest  # noqa: E402
from kb.platform.actors import system_actor  # noqa: E402
from kb.platform.embedded_pg import server_stop  # noqa: E402

FAQ = Path("/usr/share/doc/python3.11/html/faq")
# Written as people ask, not in the FAQ's headings' words; each follow-up means nothing without its question.
CONVERSATIONS = [
    ("why is python's block structure based on indentation", "and why not curly braces like C?"),
    ("my float sums come out slightly wrong, why", "how do I get exact decimal results then?"),
    ("why do methods need an explicit self argument", "can I leave it out?"),
    ("are exceptions slow in python", "so should I check with if first instead?"),
    ("why can't I change a character inside a string", "does the same go for tuples?"),
    ("is there a way to make a python script into an executable", "does that work on windows too?"),
]


def bench_user() -> User:
    user = User.objects.filter(username="bench").first()
    if user is not None:
        return user
    actor = system_actor()
    department = department_create(acting_user=actor, name="Bench")
    user = user_create(acting_user=actor, username="bench", password="bench-password-1")
    membership_create(acting_user=actor, user=user, department=department, role=Membership.Role.ADMIN)
    collection = collection_create(
        acting_user=actor, name="Python FAQ", owner=department, visibility=Collection.Visibility.COMPANY
    )
    for page in ("general.html", "design.html", "programming.html"):
        print(f"ingesting {page} ...", flush=True)
        version = document_upload(
            acting_user=user, collection=collection, name=f"faq/{page}", data=(FAQ / page).read_bytes(), enqueue=False
        )
        document_version_ingest(version_id=version.pk)
    return user


async def ask(user: User, question) -> None:
    async for _ in answer_stream(user=user, question=question):
        pass


def timings(record: QueryRecord) -> dict:
    return {
        "retrieval": record.retrieval_ms,
        "packing": record.scope.get("packing_ms", 0),
        "first_token": record.first_token_ms or 0,
        "generation": record.total_ms - (record.first_token_ms or record.total_ms),
        "prompt_tokens": record.prompt_tokens,
        "passages_sent": sum(1 for passage in record.passages.all() if passage.sent_to_model),
    }


def sent_chunks(record: QueryRecord) -> set[int]:
    return {passage.chunk_id for passage in record.passages.all() if passage.sent_to_model}


def main() -> None:
    call_command("migrate", verbosity=0)
    user = bench_user()
    print(f"{Document.objects.count()} documents; asking {len(CONVERSATIONS)} conversations", flush=True)
    rows: dict[str, list[dict]] = {
        "fresh": [],
        "follow-up": [],
        "follow-up, same passages": [],
        "follow-up, other passages": [],
    }
    for number, (question_text, follow_up_text) in enumerate(CONVERSATIONS, start=1):
        question = question_create(acting_user=user, text=question_text)
        asyncio.run(ask(user, question))
        follow_up = question_create(acting_user=user, text=follow_up_text, conversation_id=question.conversation_id)
        asyncio.run(ask(user, follow_up))
        for kind, asked in (("fresh", question), ("follow-up", follow_up)):
            asked.refresh_from_db()
            row = timings(asked.query_record)
            rows[kind].append(row)
            print(f"  {number} {kind:9} {row}", flush=True)
        same = sent_chunks(question.query_record) == sent_chunks(follow_up.query_record)
        rows["follow-up, same passages" if same else "follow-up, other passages"].append(rows["follow-up"][-1])
        print(
            f"    searched for: {follow_up.query_record.scope['standalone_query']!r}; same passages: {same}", flush=True
        )
    print("\nmedians (ms, tokens):")
    for kind, measured in rows.items():
        if not measured:
            continue
        medians = {name: statistics.median(row[name] for row in measured) for name in measured[0]}
        share = (medians["retrieval"] + medians["packing"]) / max(medians["first_token"], 1)
        print(f"  {kind:26} ({len(measured)}) {medians}; retrieval + packing = {share:.1%} of the first token")
    server_stop(ROOT / "var" / "bench-chat" / "pg")


if __name__ == "__main__":
    main()
