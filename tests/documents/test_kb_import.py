import io
import zipfile

import pytest
from django.core.management import CommandError, call_command

from kb.documents.models import DocumentVersion
from tests.factories import make_collection, make_department, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_import_queues_a_folder_and_follows_ingestion_to_the_end(live_stack, settings, tmp_path, python_docs, capsys):
    settings.MEDIA_ROOT = live_stack["media_root"]  # the worker reads what this process stores
    department = make_department()
    admin = make_user(department=department, admin=True, username="importer")
    collection = make_collection(owner=department)
    folder = tmp_path / "import"
    (folder / "faq").mkdir(parents=True)
    (folder / "faq" / "general.html").write_bytes((python_docs / "faq" / "general.html").read_bytes())
    (folder / "notes.txt").write_bytes(b"\x00\x01 not text")
    (folder / "ignored.bin").write_bytes(b"\x00")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("policy.md", "# Policy\nLaptops are encrypted.")
    (folder / "bundle.zip").write_bytes(buffer.getvalue())

    call_command("kb_import", str(folder), collection=collection.name, user=admin.username)

    versions = DocumentVersion.objects.filter(document__collection=collection)
    assert sorted(versions.values_list("document__original_name", "status")) == [
        ("bundle.zip/policy.md", "ready"),
        ("general.html", "ready"),
        ("notes.txt", "failed"),
    ]
    out, err = capsys.readouterr()
    assert "queued 3 file(s), skipped 0" in out
    assert "ingested 2 file(s), 1 failed" in out
    assert "failed notes.txt: the file looks binary" in err
    assert "ingesting: 100%" in err and "files=3/3" in err  # the progress bar


def test_import_refuses_unknown_collections_and_missing_paths(tmp_path):
    make_user(username="root-admin").__class__.objects.filter(username="root-admin").update(is_superuser=True)
    with pytest.raises(CommandError, match="no collection named 'Nope'"):
        call_command("kb_import", str(tmp_path), collection="Nope")
    collection = make_collection(owner=make_department())
    with pytest.raises(CommandError, match="does not exist"):
        call_command("kb_import", str(tmp_path / "missing"), collection=collection.name)
