"""Expand ZIP uploads into their files, refusing what could harm the server (bombs, unsafe names, encryption).

Members are read into memory and handed on by name; nothing is ever extracted to disk, so a member named
`../../etc/passwd` cannot land outside the media root even before it is refused.
"""

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from extract.formats import is_archive


@dataclass(frozen=True)
class ArchiveMember:
    name: str
    data: bytes


@dataclass(frozen=True)
class ArchiveProblem:
    name: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ArchiveLimits:
    max_total_bytes: int
    max_member_bytes: int
    max_ratio: int
    max_members: int
    max_depth: int = 3


def _unsafe(member_name: str) -> bool:
    path = PurePosixPath(member_name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts or ":" in member_name


def archive_members(
    *, archive_name: str, data: bytes, limits: ArchiveLimits, depth: int = 1
) -> Iterator[ArchiveMember | ArchiveProblem]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        yield ArchiveProblem(archive_name, "not a valid ZIP archive")
        return
    entries = [entry for entry in archive.infolist() if not entry.is_dir()]
    declared_total = sum(entry.file_size for entry in entries)
    if len(entries) > limits.max_members:
        yield ArchiveProblem(archive_name, f"holds {len(entries):,} files, over the limit of {limits.max_members:,}")
        return
    if declared_total > limits.max_total_bytes:
        yield ArchiveProblem(
            archive_name,
            f"would expand to {declared_total:,} bytes, over the limit of {limits.max_total_bytes:,} (refused whole)",
        )
        return
    for entry in entries:
        name = f"{archive_name}/{entry.filename}"
        if _unsafe(entry.filename):
            yield ArchiveProblem(name, "unsafe path inside the archive (absolute or with '..'); skipped")
        elif entry.flag_bits & 0x1:
            yield ArchiveProblem(name, "the file is encrypted in the archive; skipped")
        elif entry.file_size > limits.max_member_bytes:
            yield ArchiveProblem(name, f"{entry.file_size:,} bytes is over the limit of {limits.max_member_bytes:,}")
        elif entry.compress_size and entry.file_size / entry.compress_size > limits.max_ratio:
            ratio = entry.file_size // entry.compress_size
            yield ArchiveProblem(name, f"compression ratio {ratio:,}:1 is over the limit of {limits.max_ratio}:1")
        else:
            yield from _read_member(archive, entry, name, limits, depth)


def _read_member(
    archive: zipfile.ZipFile, entry: zipfile.ZipInfo, name: str, limits: ArchiveLimits, depth: int
) -> Iterator[ArchiveMember | ArchiveProblem]:
    try:
        with archive.open(entry) as member:
            # Headers can lie about sizes: never read past what was declared and allowed.
            data = member.read(entry.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
        yield ArchiveProblem(name, f"cannot be read from the archive ({error})")
        return
    if len(data) > entry.file_size:
        yield ArchiveProblem(name, "is larger than the archive declares; skipped")
    elif is_archive(entry.filename):
        if depth >= limits.max_depth:
            yield ArchiveProblem(name, f"archives nested deeper than {limits.max_depth} levels are not opened")
        else:
            yield from archive_members(archive_name=name, data=data, limits=limits, depth=depth + 1)
    else:
        yield ArchiveMember(name, data)
