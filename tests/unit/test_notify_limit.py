"""NotifyLimit: token buckets per source, a shared one for strangers, a bounded table."""

from __future__ import annotations

from zonekeeper.server.notify_limit import NotifyLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_known_source_has_its_burst_then_its_rate() -> None:
    clock = Clock()
    limit = NotifyLimit(rate=2, burst=5, stranger_rate=1, clock=clock)
    assert [limit.allow("192.0.2.1", True) for _ in range(6)] == [True] * 5 + [False]
    clock.now += 1.0  # two tokens back
    assert [limit.allow("192.0.2.1", True) for _ in range(3)] == [True, True, False]


def test_strangers_share_one_budget_and_cannot_spend_a_known_one() -> None:
    clock = Clock()
    limit = NotifyLimit(rate=1, burst=3, stranger_rate=1, clock=clock)  # stranger burst 2
    assert limit.allow("198.51.100.1", False) and limit.allow("198.51.100.2", False)
    assert not limit.allow("198.51.100.3", False)
    assert all(limit.allow("192.0.2.1", True) for _ in range(3))


def test_table_is_bounded_and_forgets_full_buckets() -> None:
    clock = Clock()
    limit = NotifyLimit(rate=1, burst=2, stranger_rate=1, max_sources=2, clock=clock)
    assert limit.allow("192.0.2.1", True) and limit.allow("192.0.2.2", True)
    # Table full, nothing refilled: a third source is charged to the shared bucket (burst 2).
    assert limit.allow("192.0.2.3", True) and limit.allow("192.0.2.3", True)
    assert not limit.allow("192.0.2.3", True)
    clock.now += 5.0  # every bucket full again: forgotten, the new source gets its own
    assert all(limit.allow("192.0.2.3", True) for _ in range(2))
    assert len(limit._sources) <= 2
