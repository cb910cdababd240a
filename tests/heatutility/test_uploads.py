import pytest

from heatutility.uploads import UnreadableUpload, upload_text


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
