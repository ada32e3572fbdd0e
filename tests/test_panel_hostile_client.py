"""Hostile or unusual panel answers over HTTP: sizes, depth, the key, the bound of an add."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.panel import OrderOutcomeUnknown, OrderStatus, PanelClient, PanelError, PanelUnavailable
from bot.panel.client import redact
from bot.panel.models import INVALID_ITEM
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


async def test_the_key_is_removed_from_every_panel_text(
    panel: ScriptedPanel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def respond(params: dict[str, str]) -> web.StreamResponse:
        echo = f"Invalid key {KEY}"
        answers: dict[str, Any] = {
            "balance": {"error": echo},
            "add": {"error": echo + " x" * 1000},
            "status": {"1": {"error": echo}, "2": {"status": KEY, "remains": KEY},
                       KEY: {"status": "Pending"}},
            "services": [_service(name=f"Fast {KEY} likes", desc=echo), {"service": KEY}],
            "refill": [{"order": 1, "refill": {"error": echo}}],
            "cancel": {"error": {"message": echo}},
        }  # fmt: skip
        return web.json_response(answers[params["action"]])

    url = await serve(panel, respond)
    messages: list[str] = []
    async with make_client(url, retries=0) as c:
        for call in (c.balance, lambda: c.add(1, link="https://x.test", quantity=10)):
            with pytest.raises(PanelError) as caught:
                await call()
            messages += [caught.value.message, str(caught.value), repr(caught.value)]
            assert "Invalid key ***" in caught.value.message
            assert len(caught.value.message) <= 300
        statuses = await c.statuses([1, 2])
        assert statuses[1].error == "Invalid key ***"
        assert statuses[2].error == INVALID_ITEM
        (service,) = await c.services()
        assert (service.name, service.desc) == ("Fast *** likes", "Invalid key ***")
        assert (await c.refills([1]))[1].error == "Invalid key ***"
        with pytest.raises(PanelError) as cancel:
            await c.cancel([1])
        messages.append(str(cancel.value))
    messages += [r.error or "" for r in statuses.values()]
    assert all(KEY not in m for m in messages)
    assert caplog.text and KEY not in caplog.text


def test_redact_reaches_every_string_without_recursion() -> None:
    deep: Any = [f"at the bottom {KEY}"]
    for _ in range(5000):
        deep = [deep]
    data = {"a": deep, f"{KEY} as a name": {"b": [1, KEY + KEY]}, "c": "plain"}
    cleaned = redact(data, KEY)
    bottom = cleaned["a"]
    for _ in range(5000):
        bottom = bottom[0]
    assert bottom == ["at the bottom ***"]
    assert cleaned["*** as a name"] == {"b": [1, "******"]}
    assert cleaned["c"] == "plain"
    assert redact(f"{KEY}!", KEY) == "***!"
    assert redact({"a": "x"}, "") == {"a": "x"}


async def test_add_deadline_is_twice_the_request_timeout() -> None:
    async with make_client("http://127.0.0.1:9/api/v2", timeout=7) as c:
        assert c.add_deadline == 14


async def test_add_still_queued_at_its_deadline_was_never_sent(panel: ScriptedPanel) -> None:
    url = await serve(panel, text_answer('{"order": 1}'))
    async with make_client(url, timeout=0.2, max_concurrency=1) as c:
        await c._slots.acquire()  # another call holds the only slot
        try:
            with pytest.raises(PanelUnavailable, match="not sent") as caught:
                await asyncio.wait_for(c.add(1, link="https://x.test", quantity=10), 3)
        finally:
            c._slots.release()
        assert not isinstance(caught.value, OrderOutcomeUnknown)
        assert await c.add(1, link="https://x.test", quantity=10) == 1  # the slot was given back
    assert [r["action"] for r in panel.requests] == ["add"]


async def test_add_waiting_for_the_rate_limit_at_its_deadline_was_never_sent(
    panel: ScriptedPanel,
) -> None:
    url = await serve(panel, text_answer('{"balance": "1", "currency": "USD"}'))
    async with make_client(url, timeout=0.2, max_rps=0.1, max_concurrency=2) as c:
        await c.balance()  # the only token of the next 10 s
        with pytest.raises(PanelUnavailable, match="not sent") as caught:
            await asyncio.wait_for(c.add(1, link="https://x.test", quantity=10), 3)
        assert not isinstance(caught.value, OrderOutcomeUnknown)
        assert c._slots.locked() is False
    assert [r["action"] for r in panel.requests] == ["balance"]


async def test_add_that_left_and_timed_out_is_unknown(panel: ScriptedPanel) -> None:
    async def slow(_params: dict[str, str]) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.json_response({"order": 1})

    url = await serve(panel, slow)
    async with make_client(url, timeout=0.1) as c:
        with pytest.raises(OrderOutcomeUnknown, match="timeout on action=add"):
            await c.add(1, link="https://x.test", quantity=10)
    assert len(panel.requests) == 1
