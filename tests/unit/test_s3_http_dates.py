"""A presigned GET's ``Last-Modified`` must read as the same time boto3's HEAD gives
(``s3stat.http_date`` against botocore's own parser), or a verified stamp would never
match a direct read and every pull would take the full path; a date the standard
library cannot read as UTC goes to botocore's parser rather than being guessed."""

from __future__ import annotations

import pytest
from botocore.utils import parse_timestamp

from dockyard.storage.s3stat import answer_of, http_date, stat_result

DATES = [
    "Wed, 02 Dec 2026 12:34:56 GMT",  # IMF-fixdate: what S3 and moto send
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Wednesday, 02-Dec-26 12:34:56 GMT",  # RFC 850
    "Wed Dec  2 12:34:56 2026",  # asctime: no zone, read by botocore
    "2026-12-02T12:34:56Z",  # not an HTTP date at all
]


@pytest.mark.parametrize("value", DATES)
def test_http_dates_read_as_botocore_reads_them(value: str) -> None:
    assert http_date(value) == parse_timestamp(value)
    assert http_date(value).timestamp() == parse_timestamp(value).timestamp()


def test_a_get_answer_gives_the_stat_a_head_gives() -> None:
    headers = {
        "ETag": '"0123456789abcdef0123456789abcdef"',
        "Content-Length": "1048583",
        "Last-Modified": DATES[0],
        "x-amz-meta-other": "kept out",
    }
    answer = answer_of(headers)
    assert answer is not None
    st, named = answer
    head = stat_result(1048583, parse_timestamp(DATES[0]), headers["ETag"])
    assert (st.st_ino, st.st_size, st.st_mtime_ns) == (head.st_ino, head.st_size, head.st_mtime_ns)
    assert named is None
    reference = answer_of({**headers, "X-Amz-Meta-Dockyard-Ref": "_dockyard/blobs/sha256/ab"})
    assert reference is not None and reference[1] == "_dockyard/blobs/sha256/ab"


@pytest.mark.parametrize(
    "drop", ["ETag", "Content-Length", "Last-Modified"], ids=["etag", "length", "date"]
)
def test_an_answer_missing_a_field_or_an_upload_state_says_nothing(drop: str) -> None:
    headers = {"ETag": '"ab"', "Content-Length": "3", "Last-Modified": DATES[0]}
    assert answer_of({k: v for k, v in headers.items() if k != drop}) is None
    assert answer_of({**headers, "x-amz-meta-dockyard-appendable": "1"}) is None
    assert answer_of({**headers, "Content-Length": "-1"}) is None
