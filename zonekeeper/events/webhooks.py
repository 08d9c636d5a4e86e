"""Alert events POSTed as JSON to the ``[alerts] webhooks`` URLs.

One queue and one sender task per URL: a webhook that is down or slow delays only its own
deliveries, never DNS, the API or the other webhooks. ``post`` never waits: it puts the
event on each queue (bounded by ``webhook_queue``; when full, the oldest event waiting is
dropped and counted). Each delivery is tried up to ``1 + webhook_retries`` times, with a
backoff from 1 s doubling up to 60 s; a 2xx answer is success, anything else a failure.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import httpx2
import structlog

from zonekeeper import __version__
from zonekeeper.metrics import Metrics
from zonekeeper.settings import AlertSettings

log = structlog.get_logger("zonekeeper.webhooks")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0


def shown(url: str) -> str:
    """The URL as logged: without user info or query (where tokens tend to live)."""
    parsed = httpx2.URL(url)
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


class _Hook:
    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.size = size
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Webhooks:
    def __init__(self, settings: AlertSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.hooks = [_Hook(url, settings.webhook_queue) for url in settings.webhooks]
        self.client: httpx2.AsyncClient | None = None

    def start(self) -> None:
        if not self.hooks:
            return
        self.client = httpx2.AsyncClient(
            timeout=self.settings.webhook_timeout, follow_redirects=False,
            headers={"User-Agent": f"zonekeeper/{__version__}"})
        loop = asyncio.get_running_loop()
        for hook in self.hooks:
            hook.task = loop.create_task(self._run(hook))

    def post(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every webhook; returns at once."""
        for hook in self.hooks:
            if len(hook.queue) >= hook.size:
                dropped = hook.queue.popleft()
                Metrics.bump(self.metrics.webhook, "dropped")
                log.warning("webhook.dropped", url=shown(hook.url), zone=dropped.get("zone"),
                            peer=dropped.get("peer"), reason="queue full")
            hook.queue.append(event)
            hook.ready.set()

    async def _run(self, hook: _Hook) -> None:
        while True:
            if not hook.queue:
                hook.ready.clear()
                await hook.ready.wait()
                continue
            event = hook.queue[0]
            await self._deliver(hook, event)
            if hook.queue and hook.queue[0] is event:
                hook.queue.popleft()

    async def _deliver(self, hook: _Hook, event: dict[str, Any]) -> None:
        assert self.client is not None
        delay = BACKOFF_FIRST
        tries = 1 + self.settings.webhook_retries
        for attempt in range(1, tries + 1):
            error: str
            try:
                r = await self.client.post(hook.url, json=event)
            except httpx2.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= r.status_code < 300:
                    Metrics.bump(self.metrics.webhook, "ok")
                    log.info("webhook.sent", url=shown(hook.url), zone=event.get("zone"),
                             peer=event.get("peer"), state=event.get("state"), attempt=attempt)
                    return
                error = f"HTTP {r.status_code}"
            if attempt == tries:
                Metrics.bump(self.metrics.webhook, "failed")
                log.warning("webhook.failed", url=shown(hook.url), zone=event.get("zone"),
                            peer=event.get("peer"), state=event.get("state"), attempts=attempt,
                            error=error)
                return
            log.info("webhook.retry", url=shown(hook.url), attempt=attempt, error=error,
                     retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def close(self) -> None:
        tasks = [h.task for h in self.hooks if h.task is not None and not h.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self.client is not None:
            await self.client.aclose()
