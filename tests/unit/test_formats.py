"""Formats are checked strictly enough that whatever passes can be stored."""

from datetime import UTC, datetime

import pytest

from handlers.core.validation import is_date_time, is_uuid, unstorable_strings
from persistence import timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-01T09:00:00Z",
        "2026-12-01t09:00:00z",
        "2026-12-01T09:00:00.123456+05:30",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999Z",
        "2026-12-01T09:00:00.1234567Z",  # .NET's default: digits past microseconds are dropped
        "2016-12-31T23:59:60Z",  # a leap second
        "2017-01-01T01:29:60+01:30",  # the same minute, in another offset
    ],
)
def test_valid_date_times(value: str) -> None:
    assert is_date_time(value)


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-01",
        "2026-12-01T09:00Z",
        "2026-12-01T09:00:00",
        "2026-02-30T00:00:00Z",
        "2026-12-01T12:30:60Z",  # a leap second happens at 23:59:60 UTC only
        "9999-12-31T23:59:60Z",  # the minute after it is past the year 9999
        "2026-12-01T09:00:00+24:00",
        "2026-12-01T09:00:00.Z",
        "0001-01-01T00:00:00+00:01",
        "+2026-12-01T09:00:00Z",
    ],
)
def test_invalid_date_times(value: str) -> None:
    assert not is_date_time(value)


def test_uuid_requires_the_canonical_form() -> None:
    assert is_uuid("1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed")
    assert is_uuid("1B9D6BCD-BBFD-4B2D-9B5D-AB8DFBBD4BED")
    for value in [
        "1b9d6bcdbbfd4b2d9b5dab8dfbbd4bed",
        "urn:uuid:1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",
        "{1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed}",
        "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4be",
    ]:
        assert not is_uuid(value)


def test_non_strings_are_left_to_the_type_check() -> None:
    assert is_uuid(5)
    assert is_date_time(None)


def test_unstorable_strings_are_found_anywhere() -> None:
    body = {"a": ["ok", "bad\x00"], "b": {"c": "\udc00"}, "ok": "fine 🧪"}
    assert [e["pointer"] for e in unstorable_strings(body)] == ["/a/1", "/b/c"]


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-12-01T09:00:00.1234567Z", datetime(2026, 12, 1, 9, 0, 0, 123456, UTC)),
        ("9999-12-31T23:59:59.9999999Z", datetime.max.replace(tzinfo=UTC)),
        ("2016-12-31T23:59:60.5Z", datetime(2017, 1, 1, 0, 0, 0, 500000, UTC)),
        ("2026-12-01T10:00:00+01:00", datetime(2026, 12, 1, 9, 0, 0, 0, UTC)),
    ],
)
def test_date_times_are_read_as_utc_instants(text: str, instant: datetime) -> None:
    assert timestamps.parse(text) == instant
