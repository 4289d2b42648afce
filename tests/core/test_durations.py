import math

import pytest

from batchai_jupyter.core.durations import ACCEPTED_FORMS, format_duration, parse_duration
from batchai_jupyter.errors import SpecError

DAY = 86400


@pytest.mark.parametrize(
    "value, seconds",
    [
        # numbers of seconds
        (3600, 3600),
        (0.5, 0.5),
        (1e3, 1000),
        ("3600", 3600),
        (" 90 ", 90),
        # .NET TimeSpan, as the Batch AI schemas write it
        ("7.00:00:00", 7 * DAY),
        ("1.02:03:04", DAY + 2 * 3600 + 3 * 60 + 4),
        ("0.00:01:30", 90),
        ("0.00:00:00.250", 0.25),
        ("1.23:59:59", 2 * DAY - 1),
        # hh:mm:ss
        ("01:30:00", 5400),
        ("00:00:01", 1),
        ("48:00:00", 2 * DAY),
        ("0:05:00", 300),
        # ISO-8601, as the REST API returns it
        ("P7D", 7 * DAY),
        ("PT1H30M", 5400),
        ("P1DT2H", DAY + 7200),
        ("PT0.5S", 0.5),
        ("PT90S", 90),
        ("P1W", 7 * DAY),
        ("pt15m", 900),
        ("P1DT1H1M1S", DAY + 3661),
        ("PT1.5H", 5400),
        # str(timedelta), as the az CLI prints it
        ("7 days, 0:00:00", 7 * DAY),
        ("1 day, 2:03:04", DAY + 7384),
        ("2 days, 23:59:59.500000", 3 * DAY - 0.5),
        # friendly
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", DAY),
        ("1.5h", 5400),
        ("10 M", 600),
        ("3D", 3 * DAY),
    ],
)
def test_every_accepted_form(value, seconds):
    assert parse_duration(value, "constraints.maxWallClockTime") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        0,
        -5,
        0.0,
        "0",
        "0:00:00",
        "P0D",
        "PT0S",
        "0s",
        math.inf,
        math.nan,
        True,
        False,
        None,
        [],
        {},
        "",
        "  ",
        "forever",
        "P",
        "PT",
        "P1DT",
        "P1Y",
        "P1M",
        "1w",
        "5 minutes",
        "1:2",
        "1:60:00",
        "1:00:60",
        "1.24:00:00",
        "-1 day, 0:00:00",
        "-01:00:00",
        "7.00:00",
        "1h30m",
        "PT-1H",
    ],
)
def test_everything_else_is_a_spec_error_listing_the_forms(value):
    with pytest.raises(SpecError) as caught:
        parse_duration(value, "properties.constraints.maxWallClockTime")
    message = caught.value.message
    assert caught.value.path == "properties.constraints.maxWallClockTime"
    assert message.startswith("properties.constraints.maxWallClockTime: ")
    assert repr(value) in message
    assert ACCEPTED_FORMS in message
    for form in ("7.00:00:00", "01:30:00", "P7D", "PT1H30M", "7 days, 0:00:00", "90s", "15m", "2h", "1d"):
        assert form in message


@pytest.mark.parametrize(
    "seconds, text",
    [
        (604800, "7.00:00:00"),
        (90, "0.00:01:30"),
        (0, "0.00:00:00"),
        (86399, "0.23:59:59"),
        (86400 + 3723, "1.01:02:03"),
        (0.25, "0.00:00:00.250"),
        (1.0004, "0.00:00:01"),
        (40 * 86400, "40.00:00:00"),
    ],
)
def test_format_duration_writes_the_dotnet_form(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 90, 5400, 604800, 0.5, 3 * 86400 + 17.125])
def test_format_then_parse_round_trips(seconds):
    assert parse_duration(format_duration(seconds), "x") == pytest.approx(seconds)


def test_format_duration_refuses_negative():
    with pytest.raises(ValueError):
        format_duration(-1)
