"""Zone serial policies on RFC 1982 arithmetic (``dns.serial``)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import dns.serial

MODULUS = 2**32
MAX_JUMP = 2**31 - 1


class SerialPolicy(enum.StrEnum):
    INCREMENT = "increment"
    UNIXTIME = "unixtime"
    DATESERIAL = "dateserial"


def is_newer(candidate: int, current: int) -> bool:
    """True when ``candidate`` is greater than ``current`` under RFC 1982."""
    return dns.serial.Serial(candidate) > dns.serial.Serial(current)


def next_serial(current: int, policy: SerialPolicy, now: datetime | None = None) -> int:
    """The serial after ``current``: the policy's value if newer, else current + 1 (mod 2^32).

    Never goes backwards, and a 100th edit in a day under ``dateserial`` still works
    (it moves on to the next day's numbers, as BIND does).
    """
    now = now or datetime.now(UTC)
    if policy is SerialPolicy.UNIXTIME:
        candidate = int(now.timestamp()) % MODULUS
    elif policy is SerialPolicy.DATESERIAL:
        candidate = int(now.strftime("%Y%m%d")) * 100
    else:
        candidate = (current + 1) % MODULUS
    # A candidate outside 0..2^32-1 (YYYYMMDD00 after the year 4294) is no serial at all.
    if 0 <= candidate < MODULUS and is_newer(candidate, current):
        return candidate
    return (current + 1) % MODULUS


def check_explicit(new: int, current: int) -> str | None:
    """Why an explicitly requested serial is not acceptable, or None if it is."""
    if not 0 <= new < MODULUS:
        return f"serial {new} is outside 0..{MODULUS - 1}"
    if new == current:
        return None
    if not is_newer(new, current):
        return (
            f"serial {new} is not newer than {current} under RFC 1982; "
            "secondaries would ignore it"
        )
    return None
