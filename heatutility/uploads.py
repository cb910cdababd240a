"""The text of an uploaded CSV file (bank statements, plant data, price exports).

UTF-8, with or without a byte-order mark, is read as such.  A file that is not UTF-8 is
read as Windows-1252, which is what Danish banks' and many ERP and SCADA systems' CSV
exports use (``Søren`` arrives as the byte ``0xf8``); the columns that matter (dates,
amounts, ids) are ASCII in both.  A file that is neither, or holds NUL bytes (a
spreadsheet or a PDF uploaded by mistake), is refused with where it failed: 422, never
a server error.

Django refuses a request body above ``DATA_UPLOAD_MAX_MEMORY_SIZE``
(``HEATUTILITY_MAX_UPLOAD_BYTES``) but not the files in it, which it streams to disk:
every upload site (API and admin) reads a file with :func:`upload_read`, which refuses
one above that limit (413 ``too_large``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from heatutility.errors import DomainError, ErrorItem

FALLBACK_ENCODING = "cp1252"


class UnreadableUpload(DomainError):
    code = "unreadable_file"


class UploadTooLarge(DomainError):
    status_code = 413
    code = "too_large"


def upload_read(upload: UploadedFile, *, field: str = "file") -> bytes:
    """The bytes of ``upload``; raises :class:`UploadTooLarge` before reading a file above
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and upload.size > limit:
        message = (
            f"The file has {upload.size} bytes; at most {limit} are accepted: "
            "split it into smaller files."
        )
        raise UploadTooLarge(
            message, errors=[ErrorItem(code="too_large", message=message, field=field)]
        )
    return upload.read()


def upload_text(data: bytes, *, field: str = "file") -> str:
    """``data`` decoded as described in the module; raises :class:`UnreadableUpload`."""
    if b"\x00" in data:
        at = data.index(b"\x00")
        raise _refused(f"The file is not text (a NUL byte at position {at}).", field)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        first = exc
    try:
        return data.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError:
        raise _refused(
            f"The file is neither UTF-8 nor Windows-1252 text (byte 0x{data[first.start]:02x} "
            f"at position {first.start}); save it as CSV in UTF-8.",
            field,
        ) from first


def _refused(message: str, field: str) -> UnreadableUpload:
    return UnreadableUpload(
        message, errors=[ErrorItem(code="encoding", message=message, field=field)]
    )
