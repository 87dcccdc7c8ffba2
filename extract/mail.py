"""E-mail (.eml): the message as a document (headers, body, the names of its attachments), and its attachments.

The body is partitioned by unstructured (`extract.office`); this module reads the message itself with the standard
library's `email` package. `extract_email_attachments` hands the attachments over, to become documents of their own.
"""

import email
import email.policy
import mimetypes
import re
from email.message import EmailMessage
from pathlib import PurePosixPath, PureWindowsPath

from extract.elements import assemble
from extract.types import DocumentRejected, ParsedDocument, Section

_WHITESPACE = re.compile(r"\s+")


def extract_email_attachments(data: bytes) -> list[tuple[str, bytes]]:
    """The files attached to an e-mail, as (file name without folders, bytes).

    An attached (forwarded) message is one attachment, an .eml file, whose own attachments are its business.
    """
    try:
        return _attachments_of(email.message_from_bytes(data, policy=email.policy.default))
    except RecursionError:  # parts nested deeper than the standard library's parser and walk can follow
        raise DocumentRejected("its parts are nested too deeply to take its attachments out") from None


def _attachments_of(message: EmailMessage) -> list[tuple[str, bytes]]:
    attachments: list[tuple[str, bytes]] = []
    inside_attached_message: set[int] = set()
    for part in message.walk():
        if id(part) in inside_attached_message:
            continue
        if part.get_content_type() == "message/rfc822" and part is not message:
            attached = part.get_payload()[0]
            inside_attached_message.update(id(inner) for inner in attached.walk())
            name = _attachment_name(part, len(attachments) + 1, default_extension=".eml", always=True)
            attachments.append((name if name.lower().endswith(".eml") else f"{name}.eml", attached.as_bytes()))
            continue
        if part.is_multipart() or part.get_content_disposition() not in {"attachment", "inline"}:
            continue
        name = _attachment_name(part, len(attachments) + 1)
        if name is None:
            continue  # an inline body part without a file name is the message text, not an attachment
        attachments.append((name, part.get_payload(decode=True) or b""))
    return attachments


def _attachment_name(
    part: EmailMessage, number: int, default_extension: str = ".bin", always: bool = False
) -> str | None:
    raw = part.get_filename()
    if raw:
        # Keep only the last path component, whichever separator the sender's system used.
        name = PureWindowsPath(PurePosixPath(str(raw)).name).name
        # A header's encoded name can hold control characters (NUL, newlines) that no file name should carry.
        name = "".join(character for character in name if character.isprintable()).strip()
        if name not in {"", ".", ".."}:
            return name
    if part.get_content_disposition() != "attachment" and not always:
        return None
    extension = mimetypes.guess_extension(part.get_content_type()) or default_extension
    return f"attachment-{number}{extension}"


def email_document(data: bytes, elements: list, fallback_title: str) -> ParsedDocument:
    """The message's headers as its first lines, its body, then a section naming its attachments."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    subject = _WHITESPACE.sub(" ", str(message.get("Subject", "") or "")).strip()
    lead = [
        f"{name}: {_WHITESPACE.sub(' ', str(message[name])).strip()}"
        for name in ("Subject", "From", "To", "Cc", "Date")
        if message.get(name)
    ]
    body = assemble(elements, "email", fallback_title, lead=lead, title=subject or fallback_title)
    if not "\n".join(body.text.splitlines()[len(lead) :]).strip():
        raise DocumentRejected("no text found in the e-mail (its body is empty)")
    names = [name for name, _ in extract_email_attachments(data)]
    if not names:
        return body
    listing = "Attachments:\n" + "\n".join(f"- {name}" for name in names)
    start = len(body.text) + 1
    text = f"{body.text}\n{listing}"
    last = body.sections[-1]
    sections = [*body.sections[:-1], Section(last.heading, last.start, start), Section("Attachments", start, len(text))]
    return ParsedDocument(title=body.title, text=text, sections=sections)
