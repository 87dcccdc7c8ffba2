"""`manage.py audit_verify`: walk the audit hash chain and name the first row altered, removed or slipped in."""

from django.core.management.base import BaseCommand, CommandError

from kb.audit.ledger import ledger_head, ledger_problems


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; exit status 1 and the first broken row when it was tampered with."

    def add_arguments(self, parser):
        parser.add_argument("--expect-head", metavar="SEQUENCE:HASH",
                            help="a head printed by an earlier run, kept elsewhere: proves no entries were cut off "
                                 "the end since")

    def handle(self, *args, expect_head: str | None, **options):
        problems = 0
        for problem in ledger_problems():
            where = f"entry {problem.sequence}" if problem.sequence is not None else "outside the chain"
            if problems == 0:
                self.stderr.write(self.style.ERROR(f"FIRST BREAK at {where}: {problem.message}"))
            else:
                self.stderr.write(f"also at {where}: {problem.message}")
            problems += 1
            if problems >= 50:
                self.stderr.write("(stopping after 50 problems)")
                break
        head = ledger_head()
        if expect_head:
            sequence, _, expected_hash = expect_head.partition(":")
            if not ledger_head_matches(int(sequence), expected_hash):
                self.stderr.write(self.style.ERROR(f"the chain no longer holds entry {sequence} with that hash"))
                problems += 1
        if problems:
            raise CommandError(f"the audit trail fails verification ({problems} problem(s))")
        self.stdout.write(self.style.SUCCESS(
            f"audit trail intact: {head.sequence if head else 0} entries chained; head "
            f"{head.sequence}:{head.entry_hash}" if head else "audit trail intact: no entries yet"))


def ledger_head_matches(sequence: int, entry_hash: str) -> bool:
    from kb.audit.models import LedgerEntry

    return LedgerEntry.objects.filter(sequence=sequence, entry_hash=entry_hash).exists()
