"""The product's retrieval on every shipped evaluation set (evaluation/sets/), through its own evaluator.

Each set's documents (evaluation.corpora) are ingested into a collection of their own department in var/bench-sets,
its questions imported, and the set run by `manage.py kb_evaluate` as that department's member: keyword, dense and
hybrid scores per set, and "not in the sources" at each candidate similarity threshold. The thresholds are then
summed over all sets, so that one threshold is chosen on all of them together (KB_ABSTAIN_BELOW_SIMILARITY).

    .venv/bin/python bench/evaluation_sets.py [--sets python-docs pdf-manual office fail2ban-logs]

KB_BENCH_SETS_VAR=DIR puts the sets in another folder, so that another chunking (KB_CHUNK_TOKENS,
KB_CHUNK_OVERLAP_TOKENS) is measured beside the one already ingested.
"""

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = Path(os.environ.get("KB_BENCH_SETS_VAR", ROOT / "var" / "bench-sets"))
sys.path.insert(0, str(ROOT))
os.environ["KB_VAR_DIR"] = str(BENCH_VAR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kb.settings")
os.environ.pop("DATABASE_URL", None)

from bench.django_setup import django_setup  # noqa: E402

django_setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from evaluation.corpora import CORPORA, SETS_DIR  # noqa: E402
from kb.accounts.models import Membership, User  # noqa: E402
from kb.accounts.services import department_create, membership_create, user_create  # noqa: E402
from kb.documents.models import Collection  # noqa: E402
from kb.documents.services import collection_create, document_upload, document_version_ingest  # noqa: E402
from kb.evaluation.models import EvaluationRun  # noqa: E402
from kb.platform.actors import system_actor  # noqa: E402
from kb.platform.embedded_pg import server_stop  # noqa: E402


def set_user(set_name: str) -> User:
    """The department admin the set runs as, with the set's documents ingested into their collection."""
    username = f"eval-{set_name}"
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    actor = system_actor()
    department = department_create(acting_user=actor, name=f"Evaluation {set_name}")
    user = user_create(acting_user=actor, username=username, password="bench-password-1")
    membership_create(acting_user=actor, user=user, department=department, role=Membership.Role.ADMIN)
    collection = collection_create(
        acting_user=actor, name=set_name, owner=department, visibility=Collection.Visibility.DEPARTMENT
    )
    documents = CORPORA[set_name]()
    for number, (name, data) in enumerate(sorted(documents.items()), start=1):
        print(f"  ingesting {set_name} {number}/{len(documents)}: {name}", flush=True)
        version = document_upload(acting_user=user, collection=collection, name=name, data=data, enqueue=False)
        document_version_ingest(version_id=version.pk)
    return user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    arguments = parser.parse_args()
    call_command("migrate", verbosity=0)
    users = {set_name: set_user(set_name) for set_name in arguments.sets}
    with connection.cursor() as cursor:
        # Keyword search weighs words by the statistics ANALYZE keeps (autovacuum's, in production): taken here,
        # once every set is in, so that a run never depends on when autovacuum last came by.
        cursor.execute("ANALYZE documents_chunk")
    runs = []
    for set_name, user in users.items():
        print(f"\n== {set_name}", flush=True)
        call_command(
            "kb_evaluate",
            set_name=set_name,
            user=user.username,
            import_file=SETS_DIR / set_name / "questions.jsonl",
            department=f"Evaluation {set_name}",
        )
        runs.append(EvaluationRun.objects.filter(evaluation_set__name=set_name).latest("id"))
    print("\n== not in the sources, by similarity threshold, all sets together")
    print("threshold  false refusals  false answers   " + "  ".join(f"{run.evaluation_set.name:>14}" for run in runs))
    thresholds = [row["threshold"] for row in runs[0].summary["abstention_by_threshold"]]
    for index, threshold in enumerate(thresholds):
        rows = [run.summary["abstention_by_threshold"][index] for run in runs]
        answerable = sum(row["answerable"] for row in rows)
        unanswerable = sum(row["unanswerable"] for row in rows)
        refused = sum(round((row["false_refusal_rate"] or 0) * row["answerable"]) for row in rows)
        answered = sum(round((row["false_answer_rate"] or 0) * row["unanswerable"]) for row in rows)
        per_set = "  ".join(f"{row['false_refusal_rate']:>6.2f} / {row['false_answer_rate']:<5.2f}" for row in rows)
        print(
            f"{threshold:>9.2f}  {refused:>3}/{answerable} {refused / answerable:5.1%}  "
            f"{answered:>3}/{unanswerable} {answered / unanswerable:5.1%}   {per_set}"
        )
    server_stop(BENCH_VAR / "pg")


if __name__ == "__main__":
    main()
