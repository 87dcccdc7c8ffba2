import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from kb.audit.models import AuditEvent
from kb.documents.models import DocumentVersion
from kb.documents.services import upload_batch, uploads
from tests.factories import make_collection, make_department, make_user

pytestmark = pytest.mark.django_db


def _zip(members: dict[str, bytes], *, encrypted: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    raw = bytearray(buffer.getvalue())
    # zipfile cannot encrypt; setting the "encrypted" flag in both headers is what a reader sees of encryption.
    for name in encrypted:
        raw[zipfile.ZipFile(io.BytesIO(bytes(raw))).getinfo(name).header_offset + 6] |= 0x1
        position = raw.find(b"PK\x01\x02")
        while position != -1:
            name_length = int.from_bytes(raw[position + 28 : position + 30], "little")
            if raw[position + 46 : position + 46 + name_length] == name.encode():
                raw[position + 8] |= 0x1
            position = raw.find(b"PK\x01\x02", position + 4)
    return bytes(raw)


@pytest.fixture
def admin_and_collection():
    department = make_department()
    return make_user(department=department, admin=True), make_collection(owner=department)


def _upload(admin_and_collection, name: str, data: bytes):
    admin, collection = admin_and_collection
    return upload_batch(acting_user=admin, collection=collection, files=[SimpleUploadedFile(name, data)])


def test_archives_are_expanded_recursively_into_documents(admin_and_collection):
    inner = _zip({"b.md": b"# B\nBravo."})
    result = _upload(
        admin_and_collection, "bundle.zip", _zip({"docs/a.md": b"# A\nAlpha.", "inner.zip": inner, "docs/": b""})
    )

    assert result.rejected == []
    assert sorted(v.document.original_name for v in result.accepted) == [
        "bundle.zip/docs/a.md",
        "bundle.zip/inner.zip/b.md",
    ]
    # on disk, no name from inside the archive: each version's own folder, one fixed name with the type's suffix
    assert [v.file.name.rsplit("/", 1)[-1] for v in result.accepted] == ["original.md", "original.md"]


def test_unsafe_names_and_encrypted_members_are_refused_and_nothing_lands_outside_media(
    admin_and_collection, settings, tmp_path
):
    archive = _zip(
        {
            "../../escape.md": b"# Evil",
            "/etc/cron.d/evil.md": b"# Evil",
            "locked.md": b"# Secret",
            "fine.md": b"# Fine\nOk.",
        },
        encrypted=("locked.md",),
    )

    result = _upload(admin_and_collection, "mixed.zip", archive)

    assert [v.document.original_name for v in result.accepted] == ["mixed.zip/fine.md"]
    assert sorted(result.rejected) == [
        "mixed.zip/../../escape.md: unsafe path inside the archive (absolute or with '..'); skipped",
        "mixed.zip//etc/cron.d/evil.md: unsafe path inside the archive (absolute or with '..'); skipped",
        "mixed.zip/locked.md: the file is encrypted in the archive; skipped",
    ]
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written and all(path.is_relative_to(settings.MEDIA_ROOT) for path in written)
    assert not any(path.name in {"escape.md", "evil.md"} for path in written)


def test_zip_bombs_are_refused_by_ratio_and_by_total_size(admin_and_collection, settings):
    bomb = _zip({"zeros.txt": b"0" * 5_000_000, "note.md": b"# Note\nFine."})
    result = _upload(admin_and_collection, "bomb.zip", bomb)
    assert [v.document.original_name for v in result.accepted] == ["bomb.zip/note.md"]
    assert result.rejected[0].startswith("bomb.zip/zeros.txt: compression ratio")
    assert "over the limit of 100:1" in result.rejected[0]

    settings.KB_ARCHIVE_MAX_TOTAL_BYTES = 1_000
    result = _upload(admin_and_collection, "big.zip", _zip({"a.md": b"a" * 600, "b.md": b"b" * 600}))
    assert result.accepted == []
    assert result.rejected == ["big.zip: would expand to 1,200 bytes, over the limit of 1,000 (refused whole)"]


def test_a_broken_archive_fails_alone_in_its_batch(admin_and_collection):
    admin, collection = admin_and_collection
    result = upload_batch(
        acting_user=admin,
        collection=collection,
        files=[
            SimpleUploadedFile("broken.zip", b"PK\x03\x04 this is not really a zip"),
            SimpleUploadedFile("ok.md", b"# OK\nStill here."),
        ],
    )

    assert result.rejected == ["broken.zip: not a valid ZIP archive"]
    assert [v.document.original_name for v in result.accepted] == ["ok.md"]
    assert DocumentVersion.objects.count() == 1


def test_email_attachments_become_documents_of_their_own(admin_and_collection):
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["Subject"] = "Q3 travel policy"
    mail["From"] = "hr@example.com"
    mail["To"] = "staff@example.com"
    mail.set_content("The new travel policy is attached. Book through the portal.")
    mail.add_attachment(
        b"# Travel\nEconomy class for flights under six hours.",
        maintype="text",
        subtype="markdown",
        filename="travel.md",
    )

    result = _upload(admin_and_collection, "policy-mail.eml", mail.as_bytes())

    assert result.rejected == []
    assert sorted(v.document.original_name for v in result.accepted) == ["policy-mail.eml", "policy-mail.eml/travel.md"]


def test_an_email_attachment_name_loses_the_control_characters_its_header_encoded(admin_and_collection):
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["Subject"] = "Minutes"
    mail.set_content("Minutes attached.")
    mail.add_attachment(b"# Minutes\nBudget approved.", maintype="text", subtype="markdown", filename="placeholder")
    raw = mail.as_bytes().replace(b'filename="placeholder"', b"filename*=utf-8''min%00ut%0Aes.md")

    result = _upload(admin_and_collection, "minutes.eml", raw)

    assert result.rejected == []
    assert sorted(v.document.original_name for v in result.accepted) == ["minutes.eml", "minutes.eml/minutes.md"]


def test_an_email_nested_too_deeply_is_kept_and_says_why_its_attachments_are_not(admin_and_collection):
    depth = 1500  # multiparts inside multiparts, past the standard library's recursion
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\n\n--b{n}\n' for n in range(depth))
    closing = "".join(f"\n--b{n}--\n" for n in reversed(range(depth)))
    raw = f"Subject: Forwarded many times\n{opening}Content-Type: text/plain\n\nThe innermost words.{closing}".encode()

    result = _upload(admin_and_collection, "deep.eml", raw)

    assert [v.document.original_name for v in result.accepted] == ["deep.eml"]
    assert result.rejected == [
        "deep.eml: attachments not added: its parts are nested too deeply to take its attachments out"
    ]


def test_a_file_that_trips_an_unforeseen_error_fails_alone_and_the_batch_is_still_recorded(
    admin_and_collection, monkeypatch
):
    def unforeseen(data: bytes):
        raise RuntimeError("a parser bug nobody has met yet")

    monkeypatch.setattr(uploads, "extract_email_attachments", unforeseen)  # the one fault this test injects
    admin, collection = admin_and_collection
    files = [SimpleUploadedFile("odd.eml", b"Subject: x\n\nbody"), SimpleUploadedFile("after.md", b"# After\nOn.")]

    result = upload_batch(acting_user=admin, collection=collection, files=files)

    assert [v.document.original_name for v in result.accepted] == ["odd.eml", "after.md"]
    # The mail itself was in before its attachments failed; the next file went on.
    assert result.rejected == ["odd.eml: an unexpected error stopped it (logged for the administrators)"]
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.BATCH_UPLOADED, subject_id=str(result.batch.pk))
    assert event.after["rejected"] == result.rejected
