"""`manage.py audit_verify`: walk the audit hash chain and name the first row altered, removed or slipped in."""

from django.core.management.base import BaseCommand, CommandError

from kb.audit.ledger import ledger_head, ledger_holds, ledger_problems


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; exit status 1 and the first broken row when it was tampered with."

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            metavar="SEQUENCE:HASH",
            help="a head printed by an earlier run, kept elsewhere: proves no entries were cut off the end since",
        )

    def handle(self, *args, expect_head: str | None, **options):
        sequence, _, expected_hash = (expect_head or "").partition(":")
        if expect_head and not (sequence.isdigit() and len(expected_hash) == 64):
            raise CommandError("--expect-head takes SEQUENCE:HASH as an earlier run printed it")
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
        if expect_head:
            if not ledger_holds(sequence=int(sequence), entry_hash=expected_hash):
                self.stderr.write(self.style.ERROR(f"the chain no longer holds entry {sequence} with that hash"))
                problems += 1
        if problems:
            raise CommandError(f"the audit trail fails verification ({problems} problem(s))")
        head = ledger_head()
        if head is None:
            self.stdout.write(self.style.SUCCESS("audit trail intact: no entries yet"))
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"audit trail intact: {head.sequence} entries chained; head {head.sequence}:{head.entry_hash}"
                )
            )
