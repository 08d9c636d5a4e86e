"""A budget for NOTIFY in: token buckets per source address (sans-IO, injected clock).

A NOTIFY costs a full parse, maybe a TSIG check, and a log line; sent from anywhere, as
fast as a client can write, a flood of them took the loop's time from queries (issue 14:
20,000 in 1.7 s raised SOA latency to ~200 ms). So each is first charged here, on its
source address alone, before anything is parsed: a source that some allow rule or linked
primary could admit (``Policy.notify_source``) has a bucket of its own, so strangers cannot
spend it; every other source shares one small bucket. A NOTIFY over its budget is dropped
unanswered (a real primary retries, and its refresh timer is the backstop).

The table is bounded: past ``max_sources`` buckets, those that have filled up again (they
hold no state a new one would not) are forgotten, at most once a second; if none has, a new
source is charged to the shared bucket until one does.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class NotifyLimit:
    def __init__(self, *, rate: float = 20.0, burst: int = 100, stranger_rate: float = 5.0,
                 max_sources: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.stranger_rate = stranger_rate
        self.stranger_burst = max(1.0, 2 * stranger_rate)
        self.max_sources = max_sources
        self._clock = clock
        now = clock()
        self._sources: dict[str, _Bucket] = {}
        self._shared = _Bucket(self.stranger_burst, now)
        self._pruned_at = now - 1.0

    def allow(self, address: str, known: bool) -> bool:
        """Charge one NOTIFY from ``address``; False when it is over its budget."""
        now = self._clock()
        if known:
            bucket = self._sources.get(address)
            if bucket is None:
                if len(self._sources) >= self.max_sources:
                    self._prune(now)
                if len(self._sources) < self.max_sources:
                    bucket = self._sources[address] = _Bucket(self.burst, now)
            if bucket is not None:
                return self._take(bucket, now, self.rate, self.burst)
        return self._take(self._shared, now, self.stranger_rate, self.stranger_burst)

    def _take(self, bucket: _Bucket, now: float, rate: float, burst: float) -> bool:
        tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if tokens < 1.0:
            bucket.tokens = tokens
            return False
        bucket.tokens = tokens - 1.0
        return True

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < 1.0:
            return
        self._pruned_at = now
        rate, burst = self.rate, self.burst
        full = [a for a, b in self._sources.items() if b.tokens + (now - b.at) * rate >= burst]
        for address in full:
            del self._sources[address]
