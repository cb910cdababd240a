import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from heatutility.uploads import UnreadableUpload, UploadTooLarge, upload_read, upload_text


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("date;amount\nSøren;1,5\n".encode(), "date;amount\nSøren;1,5\n"),
        ("\ufeffdate;amount\n".encode(), "date;amount\n"),  # Excel's UTF-8 with BOM
        ("date;amount\nSøren;€ 1,5\n".encode("cp1252"), "date;amount\nSøren;€ 1,5\n"),
        (b"", ""),
    ],
)
def test_utf8_first_then_windows_1252(data, text):
    assert upload_text(data) == text


def test_what_is_neither_is_refused_with_where():
    data = "Søren".encode("cp1252") + b"\x81"  # 0x81 is undefined in Windows-1252
    with pytest.raises(UnreadableUpload) as refused:
        upload_text(data, field="upload")
    assert refused.value.status_code == 422
    assert refused.value.message == (
        "The file is neither UTF-8 nor Windows-1252 text (byte 0xf8 at position 1); "
        "save it as CSV in UTF-8."
    )
    assert [e.as_dict() for e in refused.value.errors] == [
        {"code": "encoding", "field": "upload", "message": refused.value.message}
    ]


def test_a_file_up_to_the_limit_is_read(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    assert upload_read(SimpleUploadedFile("a.csv", b"0123456789")) == b"0123456789"


def test_a_file_above_the_limit_is_refused_as_413_naming_the_field(settings):
    """Django limits the request body, not the files in it: HEATUTILITY_MAX_UPLOAD_BYTES
    (DATA_UPLOAD_MAX_MEMORY_SIZE) holds for every file staff or vendors upload."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    with pytest.raises(UploadTooLarge) as refused:
        upload_read(SimpleUploadedFile("a.csv", b"01234567890"), field="upload")
    assert refused.value.status_code == 413
    message = "The file has 11 bytes; at most 10 are accepted: split it into smaller files."
    assert refused.value.as_dict() == {
        "message": message,
        "code": "too_large",
        "errors": [{"code": "too_large", "field": "upload", "message": message}],
    }
