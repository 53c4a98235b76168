"""RFC 3339 date-times as the API reads them, within the range Python and PostgreSQL both hold.

RFC 3339 allows any number of fractional digits and a leap second (`23:59:60`). PostgreSQL keeps
microseconds, so further digits are dropped (never rounded up past the year 9999); a leap second
is read as the first instant of the next minute, as PostgreSQL itself reads it.

Values go to PostgreSQL as text cast to timestamptz, because asyncpg's binary codec writes the
first and last instants Python can represent (0001-01-01T00:00:00Z, 9999-12-31T23:59:59.999999Z)
as -infinity and infinity.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
MAX_LENGTH = 64  # more fractional digits than anyone means


def parse(text: str) -> datetime:
    """The UTC instant an RFC 3339 date-time with an offset names; ValueError if none."""
    match = _RFC3339.fullmatch(text) if len(text) <= MAX_LENGTH else None
    if match is None:
        raise ValueError("not an RFC 3339 date-time with an offset")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    microsecond = int(((match[7] or "") + "000000")[:6])
    if match[8]:
        zone = UTC
    else:
        hours, minutes = int(match[10]), int(match[11])
        if hours > 23 or minutes > 59:
            raise ValueError("offset out of range")
        sign = -1 if match[9] == "-" else 1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    leap = second == 60
    try:
        local = datetime(year, month, day, hour, minute, 59 if leap else second, microsecond, zone)
        instant = local.astimezone(UTC)
        if leap:
            if (instant.hour, instant.minute) != (23, 59):
                raise ValueError("a leap second is 23:59:60 UTC")
            instant += timedelta(seconds=1)
    except OverflowError:
        raise ValueError("outside the years 0001 to 9999 in UTC") from None
    return instant


def to_database(value: datetime | None) -> str | None:
    """The text PostgreSQL reads as value (see the module docstring)."""
    return None if value is None else value.isoformat()
