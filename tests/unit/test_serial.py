"""Properties of the zone serial policies (RFC 1982 serial number arithmetic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dns.serial
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from zonekeeper.proto.serial import SerialPolicy, check_explicit, next_serial

MOD = 2**32
HALF = 2**31

serials = st.integers(min_value=0, max_value=MOD - 1)
# Every representable moment, in UTC (the server's clock is UTC).
moments = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
# Moments for which YYYYMMDD00 fits in 32 bits.
plausible_moments = st.datetimes(
    min_value=datetime(1970, 1, 1),
    max_value=datetime(4294, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
# Moments for which YYYYMMDD00 does not fit in 32 bits (4294123100 < 2^32 <= 4295010100).
far_moments = st.datetimes(
    min_value=datetime(4295, 1, 1),
    max_value=datetime(9999, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
policies = st.sampled_from(list(SerialPolicy))


def newer(a: int, b: int) -> bool:
    return dns.serial.Serial(a) > dns.serial.Serial(b)


def date_serial(now: datetime) -> int:
    return (now.year * 10000 + now.month * 100 + now.day) * 100


@settings(deadline=None, max_examples=500)
@given(current=serials, policy=policies, now=moments)
@example(current=MOD - 1, policy=SerialPolicy.INCREMENT, now=datetime(2024, 1, 1, tzinfo=UTC))
@example(current=MOD - 1, policy=SerialPolicy.DATESERIAL, now=datetime(2024, 1, 1, tzinfo=UTC))
@example(current=2024010100, policy=SerialPolicy.DATESERIAL, now=datetime(2024, 1, 1, tzinfo=UTC))
@example(current=0, policy=SerialPolicy.DATESERIAL, now=datetime(9999, 12, 31, tzinfo=UTC))
@example(current=0, policy=SerialPolicy.DATESERIAL, now=datetime(4295, 1, 1, tzinfo=UTC))
@example(current=0, policy=SerialPolicy.UNIXTIME, now=datetime(1, 1, 1, tzinfo=UTC))
def test_next_serial_is_newer_and_in_range(
    current: int, policy: SerialPolicy, now: datetime
) -> None:
    result = next_serial(current, policy, now)
    assert isinstance(result, int)
    assert 0 <= result < MOD, result
    assert newer(result, current), (current, result)


@settings(deadline=None, max_examples=300)
@given(current=serials, now=moments)
@example(current=MOD - 1, now=datetime(2024, 1, 1, tzinfo=UTC))
@example(current=0, now=datetime(2024, 1, 1, tzinfo=UTC))
@example(current=HALF - 1, now=datetime(2024, 1, 1, tzinfo=UTC))
def test_increment_is_plus_one_mod_2_32(current: int, now: datetime) -> None:
    assert next_serial(current, SerialPolicy.INCREMENT, now) == (current + 1) % MOD


def test_increment_wraps_to_zero() -> None:
    assert next_serial(4294967295, SerialPolicy.INCREMENT) == 0


@settings(deadline=None, max_examples=500)
@given(current=serials, now=plausible_moments)
@example(current=2024010100, now=datetime(2024, 1, 1, 12, tzinfo=UTC))
@example(current=2024010099, now=datetime(2024, 1, 1, 12, tzinfo=UTC))
@example(current=2024010099, now=datetime(2024, 1, 2, 12, tzinfo=UTC))
@example(current=1, now=datetime(2024, 1, 2, 12, tzinfo=UTC))
@example(current=MOD - 1, now=datetime(2024, 1, 2, 12, tzinfo=UTC))
@example(current=(2024010200 + HALF) % MOD, now=datetime(2024, 1, 2, tzinfo=UTC))
def test_dateserial_is_date_when_newer_else_plus_one(current: int, now: datetime) -> None:
    candidate = date_serial(now)
    assert candidate < MOD
    expected = candidate if newer(candidate, current) else (current + 1) % MOD
    assert next_serial(current, SerialPolicy.DATESERIAL, now) == expected


@settings(deadline=None, max_examples=200)
@given(current=serials, now=far_moments)
@example(current=5, now=datetime(9999, 12, 31, tzinfo=UTC))
@example(current=MOD - 1, now=datetime(5000, 6, 1, tzinfo=UTC))
def test_dateserial_beyond_32_bits_falls_back_to_plus_one(current: int, now: datetime) -> None:
    """Past the year 4294 YYYYMMDD00 does not fit in a serial: current + 1 is used."""
    assert date_serial(now) >= MOD
    assert next_serial(current, SerialPolicy.DATESERIAL, now) == (current + 1) % MOD


@settings(deadline=None, max_examples=300)
@given(current=serials, now=plausible_moments)
def test_unixtime_is_the_clock_when_newer_else_plus_one(current: int, now: datetime) -> None:
    clock = int(now.timestamp()) % MOD
    expected = clock if newer(clock, current) else (current + 1) % MOD
    assert next_serial(current, SerialPolicy.UNIXTIME, now) == expected


@settings(deadline=None, max_examples=100)
@given(
    day=st.dates(min_value=datetime(1970, 1, 1).date(), max_value=datetime(4294, 12, 30).date()),
    start_offset=st.integers(min_value=-5000, max_value=0),
    seconds=st.lists(st.integers(min_value=0, max_value=86399), min_size=100, max_size=100),
)
@example(day=datetime(2024, 2, 29).date(), start_offset=0, seconds=[0] * 100)
@example(day=datetime(2024, 12, 31).date(), start_offset=-1, seconds=list(range(100)))
def test_dateserial_hundred_edits_in_one_day(
    day: object, start_offset: int, seconds: list[int]
) -> None:
    """100 edits in one day (from yesterday's numbers or this morning's) all get a newer serial."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)  # type: ignore[attr-defined]
    current = date_serial(midnight) + start_offset
    assert 0 <= current < MOD
    moments_today = sorted(midnight + timedelta(seconds=s) for s in seconds)
    got = []
    for now in moments_today:
        nxt = next_serial(current, SerialPolicy.DATESERIAL, now)
        assert 0 <= nxt < MOD
        assert newer(nxt, current), (current, nxt)
        assert nxt > current  # no wrap in this range: plain integer order too
        got.append(nxt)
        current = nxt
    assert len(got) == 100
    assert all(a < b for a, b in zip(got, got[1:], strict=False))
    assert len(set(got)) == 100


@settings(deadline=None, max_examples=1000)
@given(current=serials, new=serials)
@example(current=0, new=HALF - 1)
@example(current=0, new=HALF)
@example(current=0, new=HALF + 1)
@example(current=MOD - 1, new=0)
@example(current=MOD - 1, new=HALF - 2)
@example(current=MOD - 1, new=HALF - 1)
@example(current=HALF, new=0)
@example(current=HALF, new=MOD - 1)
@example(current=7, new=7)
@example(current=7, new=6)
def test_check_explicit_accepts_exactly_newer_by_less_than_2_31(current: int, new: int) -> None:
    distance = (new - current) % MOD
    reason = check_explicit(new, current)
    if distance < HALF:  # 0 (the current serial) or newer by 1..2^31-1
        assert reason is None, (current, new, reason)
        assert new == current or newer(new, current)
    else:
        assert isinstance(reason, str) and reason, (current, new)
        assert str(new) in reason


@settings(deadline=None, max_examples=200)
@given(
    current=serials,
    new=st.one_of(st.integers(max_value=-1), st.integers(min_value=MOD)),
)
@example(current=0, new=MOD)
@example(current=0, new=-1)
@example(current=MOD - 1, new=MOD)
def test_check_explicit_rejects_out_of_range(current: int, new: int) -> None:
    reason = check_explicit(new, current)
    assert isinstance(reason, str) and reason
    assert str(new) in reason


@pytest.mark.parametrize("policy", list(SerialPolicy))
def test_next_serial_default_clock(policy: SerialPolicy) -> None:
    for current in (0, 1, 2024010100, HALF, MOD - 1):
        result = next_serial(current, policy)
        assert 0 <= result < MOD
        assert newer(result, current)
