"""Row leases on the holder's side: who holds them (the id a process writes into the
`lease_owner` columns it claims) and the renewal that keeps them while it works."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Self

log = logging.getLogger(__name__)


def process_owner_id() -> str:
    """Who holds a lease: host, pid and a random part (pids repeat across containers)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


# A holder renews when a third of its lease has passed: one renewal that fails (a database
# hiccup) still leaves a third of the lease for the next one.
RENEW_EVERY_SHARE = 1 / 3

Renew = Callable[[list[int]], Awaitable[set[int]]]


class LeaseKeeper:
    """Keeps a claimed batch's leases alive while its holder works on it.

    `renew(ids)` extends the leases on those ids and returns the ones still held. `held_until`
    is the loop time (`asyncio` clock) before which every lease still held surely holds: it is
    measured before each claim or renewal is sent, so it is never later than the database's
    `lease_until`. Rows the holder is done with (recorded, released) are `finish`ed and no longer
    renewed; a row another instance took is `lost` and must not be worked on any more.
    """

    def __init__(
        self, renew: Renew, ids: Iterable[int], *, seconds: float, taken_at: float
    ) -> None:
        self._renew = renew
        self._working = set(ids)
        self._lost: set[int] = set()
        self._seconds = seconds
        self.held_until = taken_at + seconds
        self._task: asyncio.Task[None] | None = None

    def holds(self, row_id: int) -> bool:
        return row_id not in self._lost

    def finish(self, row_id: int) -> None:
        self._working.discard(row_id)

    @property
    def unfinished(self) -> set[int]:
        """Rows still held and not finished (to release when the holder stops early)."""
        return set(self._working)

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._keep())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._working:
            await asyncio.sleep(self._seconds * RENEW_EVERY_SHARE)
            ids = sorted(self._working)
            if not ids:
                return
            asked_at = loop.time()
            try:
                held = await self._renew(ids)
            except Exception:  # the leases still hold until `held_until`; try again later
                log.warning("could not renew %d leases", len(ids), exc_info=True)
                continue
            lost = (set(ids) - held) & self._working  # finished meanwhile is not lost
            if lost:
                log.info("%d leases were taken over or released: %s", len(lost), sorted(lost))
                self._lost |= lost
                self._working -= lost
            if held:
                self.held_until = asked_at + self._seconds
