"""KB_STORAGE in kb/settings.py: uploads in a folder by default, in an S3-compatible bucket with KB_STORAGE=s3."""

import json
import os
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

# The storage the app's code gets (default_storage is storages['default']), described by a process of its own.
DESCRIBE_DEFAULT_STORAGE = """
import json
import django
django.setup()
from django.core.files.storage import storages
storage = storages["default"]
described = {"class": f"{type(storage).__module__}.{type(storage).__name__}"}
for name in ("location", "bucket_name", "endpoint_url", "region_name", "access_key", "file_overwrite"):
    described[name] = str(getattr(storage, name, None))
print(json.dumps(described))
"""


def _settings_of(**variables: str) -> subprocess.CompletedProcess:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "KB_STORAGE", "KB_MEDIA_ROOT"))
    }
    environment.update({"DJANGO_SETTINGS_MODULE": "kb.settings", **variables})
    return subprocess.run(
        [sys.executable, "-c", DESCRIBE_DEFAULT_STORAGE],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _described(finished: subprocess.CompletedProcess) -> dict:
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_uploads_are_kept_in_the_media_folder_by_default(tmp_path):
    described = _described(_settings_of(KB_MEDIA_ROOT=str(tmp_path / "uploads")))

    assert described["class"] == "django.core.files.storage.filesystem.FileSystemStorage"
    assert described["location"] == str(tmp_path / "uploads")


def test_kb_storage_s3_keeps_uploads_in_the_bucket_the_aws_variables_name():
    described = _described(
        _settings_of(
            KB_STORAGE="s3",
            AWS_STORAGE_BUCKET_NAME="kb-uploads",
            AWS_S3_ENDPOINT_URL="http://minio.intranet:9000",
            AWS_S3_REGION_NAME="eu-west-1",
            AWS_ACCESS_KEY_ID="kb-app",
            AWS_SECRET_ACCESS_KEY="not-a-real-secret",
        )
    )

    assert described == {
        "class": "storages.backends.s3.S3Storage",
        "location": "",
        "bucket_name": "kb-uploads",
        "endpoint_url": "http://minio.intranet:9000",
        "region_name": "eu-west-1",
        "access_key": "kb-app",
        # A second upload of a name gets a name of its own, as in a folder, instead of replacing the first.
        "file_overwrite": "False",
    }


def test_kb_storage_s3_without_a_bucket_or_an_unknown_storage_says_what_to_set():
    without_bucket = _settings_of(KB_STORAGE="s3")
    unknown = _settings_of(KB_STORAGE="ftp")

    assert without_bucket.returncode != 0 and "AWS_STORAGE_BUCKET_NAME" in without_bucket.stderr
    assert unknown.returncode != 0 and "KB_STORAGE='ftp': use filesystem (the default) or s3" in unknown.stderr
