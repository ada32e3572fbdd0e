"""Hostile or unusual panel answers over HTTP: sizes, depth, the key, the bound of an add."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.panel import OrderOutcomeUnknown, OrderStatus, PanelClient, PanelUnavailable
from tests.panel_fixtures import Responder, ScriptedPanel, text_answer

KEY = "sk-live-SECRET-4f1c9e"


def _service(**overrides: Any) -> dict[str, Any]:
    base = {"service": 1, "name": "S", "type": "Default", "category": "C"}
    return base | {"rate": "0.90", "min": "50", "max": "10000"} | overrides


def make_client(url: str, *, timeout: float = 5, max_rps: float = 1000, **kw: Any) -> PanelClient:
    return PanelClient(
        url, SecretStr(KEY), timeout=timeout, max_rps=max_rps, retry_backoff=0.01, **kw
    )


@pytest.fixture
async def panel() -> AsyncIterator[ScriptedPanel]:
    server = ScriptedPanel(text_answer("{}"))
    yield server
    await server.stop()


async def serve(server: ScriptedPanel, respond: Responder) -> str:
    server.respond = respond
    return await server.start()


async def start_streaming_panel(chunks: int) -> tuple[web.AppRunner, str, list[int]]:
    """A panel whose answer is ``chunks`` chunks of 64 KiB, sent without a Content-Length."""
    written: list[int] = []

    async def api(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await response.write(b'{"balance": "1", "pad": "')
            for _ in range(chunks):
                await response.write(b"x" * 65536)
                written.append(1)
            await response.write(b'"}')
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading
        return response

    app = web.Application()
    app.router.add_post("/api/v2", api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/api/v2", written


async def test_a_streamed_answer_is_cut_at_the_cap() -> None:
    runner, url, _written = await start_streaming_panel(chunks=64)  # 4 MiB, no length
    try:
        async with make_client(url, retries=0) as c:
            with pytest.raises(PanelUnavailable, match="answer too large on action=balance"):
                await c.balance()
    finally:
        await runner.cleanup()


async def test_an_answer_over_the_cap_is_unavailable_or_unknown_for_add(
    panel: ScriptedPanel,
) -> None:
    huge = '{"balance": "1", "currency": "USD", "pad": "' + "x" * (1 << 20) + '"}'
    url = await serve(panel, text_answer(huge))
    async with make_client(url, retries=0) as c:
        with pytest.raises(PanelUnavailable, match="answer too large") as caught:
            await c.balance()
        assert not isinstance(caught.value, OrderOutcomeUnknown)
        with pytest.raises(OrderOutcomeUnknown, match="answer too large on action=add"):
            await c.add(1, link="https://x.test", quantity=10)


async def test_a_large_catalog_is_read(panel: ScriptedPanel) -> None:
    items = [_service(service=i, desc="d" * 1000) for i in range(1, 3001)]  # about 3.4 MB
    url = await serve(panel, text_answer(json.dumps(items)))
    async with make_client(url, retries=0) as c:
        assert len(await c.services()) == 3000


async def test_deeply_nested_json_is_unavailable_or_unknown_for_add(panel: ScriptedPanel) -> None:
    url = await serve(panel, text_answer("[" * 100_000 + "]" * 100_000))
    async with make_client(url, retries=0) as c:
        with pytest.raises(PanelUnavailable, match="nested too deeply") as caught:
            await c.statuses([1, 2])
        assert not isinstance(caught.value, OrderOutcomeUnknown)
        with pytest.raises(OrderOutcomeUnknown, match="on action=add"):
            await c.add(1, link="https://x.test", quantity=10)


async def test_nesting_the_decoder_accepts_costs_one_item(panel: ScriptedPanel) -> None:
    deep = "[" * 900 + "]" * 900
    text = '{"1": {"status": "Pending", "extra": ' + deep + '}, "2": {"error": ' + deep + "}}"
    url = await serve(panel, text_answer(text))
    async with make_client(url, retries=0) as c:
        results = await c.statuses([1, 2])
    assert results[1].status is OrderStatus.PENDING
    assert results[2].error is not None
