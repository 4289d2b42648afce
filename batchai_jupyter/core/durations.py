"""Durations as Batch AI users wrote them (schema, REST, CLI output) and as we print them."""

from __future__ import annotations

import math
import re

from ..errors import SpecError

ACCEPTED_FORMS = (
    "a positive duration: seconds (3600), d.hh:mm:ss (7.00:00:00), hh:mm:ss (01:30:00), "
    "ISO-8601 (P7D, PT1H30M, P1DT2H), '7 days, 0:00:00', or 90s / 15m / 2h / 1d"
)

_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_NUMBER = r"(\d+(?:\.\d+)?)"

# .NET TimeSpan `d.hh:mm:ss[.fff]` and Python's `str(timedelta)` `N day(s), h:mm:ss[.ffffff]`;
# both may leave the day part out.
_CLOCK = re.compile(r"(?:(\d+)(?:\.|\s+days?,\s*))?(\d+):(\d{2}):(\d{2})(\.\d+)?", re.IGNORECASE)
_ISO = re.compile(
    rf"P(?!$)(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?=\d)(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?",
    re.IGNORECASE,
)
_FRIENDLY = re.compile(rf"{_NUMBER}\s*([smhd])?", re.IGNORECASE)


def parse_duration(value: object, path: str) -> float:
    """Seconds in `value` (a number of seconds or one of ACCEPTED_FORMS); SpecError at `path` if not."""
    seconds = _seconds(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(path, value, ACCEPTED_FORMS)
    return seconds


def format_duration(seconds: float) -> str:
    """The .NET TimeSpan form Batch AI's schemas use: 604800 -> '7.00:00:00' (milliseconds if any)."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {seconds}")
    total_ms = round(seconds * 1000)
    days, rest = divmod(total_ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    text = f"{days}.{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{text}.{millis:03d}" if millis else text


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    for parse in (_parse_clock, _parse_iso, _parse_friendly):
        seconds = parse(text)
        if seconds is not None:
            return seconds
    return None


def _parse_clock(text: str) -> float | None:
    match = _CLOCK.fullmatch(text)
    if not match:
        return None
    days, hours, minutes, secs, fraction = match.groups()
    if int(minutes) >= 60 or int(secs) >= 60 or (days is not None and int(hours) >= 24):
        return None
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(secs) + float(fraction or 0)


def _parse_iso(text: str) -> float | None:
    match = _ISO.fullmatch(text)
    if not match:
        return None
    return sum(float(number or 0) * _UNIT_SECONDS[unit] for number, unit in zip(match.groups(), "wdhms", strict=True))


def _parse_friendly(text: str) -> float | None:
    match = _FRIENDLY.fullmatch(text)
    if not match:
        return None
    number, unit = match.groups()
    return float(number) * _UNIT_SECONDS[(unit or "s").lower()]
