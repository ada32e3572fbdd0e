"""Shared helpers of the panel tests: the seed document's example answers and tiny test servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web

from tests.factories import FakeClock as FakeClock  # re-exported: the panel tests import it here

# The seed document's example answers, verbatim (whitespace included).
SEED_BALANCE = """{
    "balance": "100.84292",
    "currency": "USD"
}"""

SEED_SERVICES = """[
    {
        "service": 1448,
        "name": "Mga Tagasubaybay sa Instagram",
        "type": "Default",
        "category": "Instagram",
        "rate": "0.90",
        "min": "50",
        "max": "10000",
        "refill": true
    },
    {
        "service": 1452,
        "name": "Mga Komento sa Facebook",
        "type": "Custom Comments",
        "category": "Facebook",
        "rate": "8",
        "min": "10",
        "max": "1500",
        "refill": false
    }
]"""

SEED_ADD = """{
\t"order": 23501
}"""

SEED_STATUS = """{
    "charge": "0.27819",
    "start_count": "3572",
    "status": "Partial",
    "remains": "157",
    "currency": "USD"
}"""

SEED_STATUSES = """{
    "1": {
        "charge": "0.27819",
        "start_count": "3572",
        "status": "Partial",
        "remains": "157",
        "currency": "USD"
    },
    "10": {
        "error": "Incorrect order ID"
    },
    "100": {
        "charge": "1.44219",
        "start_count": "234",
        "status": "In progress",
        "remains": "10",
        "currency": "USD"
    }
}"""

SEED_REFILL = """{
    "refill": "1"
}"""

SEED_REFILL_STATUS = """{
    "status": "Completed"
}"""

SEED_REFILLS = """[
    {
        "order": 1,
        "refill": 1
    },
    {
        "order": 2,
        "refill": 2
    },
    {
        "order": 3,
        "refill": {
            "error": "Incorrect order ID"
        }
    }
]"""

SEED_REFILL_STATUSES = """[
    {
        "refill": 1,
        "status": "Completed"
    },
    {
        "refill": 2,
        "status": "Rejected"
    },
    {
        "refill": 3,
        "status": {
            "error": "Refill not found"
        }
    }
]"""

SEED_CANCEL = """[
    {
        "order": 9,
        "cancel": {
            "error": "Incorrect order ID"
        }
    },
    {
        "order": 2,
        "cancel": 1
    }
]"""


Responder = Callable[[dict[str, str]], Awaitable[web.StreamResponse]]


class ScriptedPanel:
    """A tiny HTTP server that answers with whatever ``respond`` returns and records requests."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.requests: list[dict[str, str]] = []
        self.other_hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        self.requests.append(params)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.respond(params)
        finally:
            self.in_flight -= 1

    async def _elsewhere(self, _request: web.Request) -> web.StreamResponse:
        self.other_hits += 1
        return web.json_response({"balance": "1", "currency": "USD"})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v2", self._api)
        app.router.add_route("*", "/elsewhere", self._elsewhere)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/v2"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def text_answer(text: str, status: int = 200, content_type: str = "application/json") -> Responder:
    """A responder that always answers ``text``."""

    async def respond(_params: dict[str, str]) -> web.StreamResponse:
        return web.Response(text=text, status=status, content_type=content_type)

    return respond


def seed_answer() -> Responder:
    """Answers every action with the seed document's example, single or multi form."""
    singles = {
        "balance": SEED_BALANCE,
        "services": SEED_SERVICES,
        "add": SEED_ADD,
        "status": SEED_STATUS,
        "refill": SEED_REFILL,
        "refill_status": SEED_REFILL_STATUS,
    }
    multis = {
        "status": SEED_STATUSES,
        "refill": SEED_REFILLS,
        "refill_status": SEED_REFILL_STATUSES,
        "cancel": SEED_CANCEL,
    }

    async def respond(params: dict[str, str]) -> web.StreamResponse:
        action = params.get("action", "")
        multi = "orders" in params or "refills" in params
        text = (multis if multi else singles).get(action, '{"error": "Incorrect request"}')
        await asyncio.sleep(0)
        return web.Response(text=text, content_type="application/json")

    return respond


def unused_port() -> int:
    """A local port nothing listens on (bound, then released), for connection-refused tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
