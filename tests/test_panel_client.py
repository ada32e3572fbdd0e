"""PanelClient over real HTTP: its contract against the sandbox, the seed answers, failures."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.panel import (
    OrderOutcomeUnknown,
    OrderStatus,
    PanelClient,
    PanelError,
    PanelUnavailable,
    RefillStatus,
)
from playground.sandbox import SandboxPanel
from tests.panel_fixtures import (
    FakeClock,
    Responder,
    ScriptedPanel,
    seed_answer,
    text_answer,
    unused_port,
)

KEY = "sk-live-SECRET-4f1c9e"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sandbox(clock: FakeClock) -> AsyncIterator[SandboxPanel]:
    async with SandboxPanel(api_key=KEY, clock=clock, step_seconds=10) as panel:
        yield panel


def make_client(
    url: str,
    *,
    timeout: float = 5,
    max_rps: float = 1000,
    max_concurrency: int = 4,
    retries: int = 2,
) -> PanelClient:
    """A client with fast retries and no practical rate limit unless a test asks for one."""
    return PanelClient(
        url,
        SecretStr(KEY),
        timeout=timeout,
        max_rps=max_rps,
        max_concurrency=max_concurrency,
        retries=retries,
        retry_backoff=0.01,
    )


@pytest.fixture
async def client(sandbox: SandboxPanel) -> AsyncIterator[PanelClient]:
    assert sandbox.url is not None
    async with make_client(sandbox.url) as panel_client:
        yield panel_client


async def scripted(respond: Responder) -> tuple[ScriptedPanel, str]:
    server = ScriptedPanel(respond)
    return server, await server.start()


def actions(sandbox: SandboxPanel, action: str) -> int:
    return sandbox.actions().count(action)


# --- the contract, against the sandbox -----------------------------------------------------------


async def test_balance_and_services(client: PanelClient) -> None:
    balance = await client.balance()
    assert (balance.balance, balance.currency) == (Decimal("100.84292"), "USD")
    services = {s.id: s for s in await client.services()}
    assert len(services) >= 40
    assert services[1448].rate == Decimal("0.90")
    assert services[1452].type == "Custom Comments"


async def test_order_lifecycle(client: PanelClient, sandbox: SandboxPanel) -> None:
    order = await client.add(1448, link="https://instagram.com/someone", quantity=1000)
    assert sandbox.orders[order].charge == Decimal("0.90")
    assert (await client.balance()).balance == Decimal("99.94292")
    first = await client.status(order)
    assert (first.order, first.status, first.start_count) == (order, OrderStatus.PENDING, None)
    sandbox.advance(10)
    running = await client.status(order)
    assert running.status is OrderStatus.IN_PROGRESS
    assert running.start_count is not None
    sandbox.advance(10)
    done = await client.status(order)
    assert (done.status, done.remains, done.charge) == (OrderStatus.COMPLETED, 0, Decimal("0.9"))


async def test_add_sends_list_fields_joined_and_skips_none(
    client: PanelClient, sandbox: SandboxPanel
) -> None:
    comments = ["Wow", "Nice", "Love it", "So good", "Great"]
    order = await client.add(2020, link="https://instagram.com/p/abc", comments=comments)
    placed = sandbox.orders[order]
    assert placed.fields == {"service": "2020", "link": "https://instagram.com/p/abc",
                             "comments": "\n".join(comments)}  # fmt: skip
    assert placed.quantity == 5
    assert placed.charge == Decimal("0.0625")
    expiry = date.today() + timedelta(days=30)
    sub = await client.add(2040, username="someone", min=100, max=200, delay=30, expiry=expiry)
    assert sandbox.orders[sub].fields["expiry"] == expiry.strftime("%d/%m/%Y")
    drip = await client.add(2001, link="instagram.com/x", quantity=100, runs=3, interval=60)
    assert sandbox.orders[drip].charge == Decimal("0.375")


async def test_statuses_refills_and_cancel(client: PanelClient, sandbox: SandboxPanel) -> None:
    refillable = await client.add(2001, link="https://instagram.com/a", quantity=100)
    no_refill = await client.add(2002, link="https://instagram.com/b", quantity=100)
    sandbox.advance(20)
    cancelable = await client.add(2100, link="https://tiktok.com/@c", quantity=100)
    no_cancel = await client.add(2002, link="https://instagram.com/d", quantity=100)

    statuses = await client.statuses([refillable, cancelable, 999])
    assert statuses[refillable].status is OrderStatus.COMPLETED
    assert statuses[cancelable].status is OrderStatus.PENDING
    assert statuses[999].error == "Incorrect order ID"

    refill_id = await client.refill(refillable)
    assert (await client.refill_status(refill_id)).status is RefillStatus.PENDING
    refills = await client.refills([no_refill, 999, cancelable])
    assert refills[no_refill].error == "Refill is disabled for this service"
    assert refills[999].error == "Incorrect order ID"
    assert refills[cancelable].error == "Order is not eligible for refill"
    sandbox.advance(20)
    refill_statuses = await client.refill_statuses([refill_id, 77])
    assert refill_statuses[refill_id].status is RefillStatus.COMPLETED
    assert refill_statuses[77].error == "Refill not found"

    fresh = await client.add(2100, link="https://tiktok.com/@e", quantity=100)
    canceled = await client.cancel([fresh, no_cancel, cancelable, 999])
    assert canceled[fresh].ok and canceled[fresh].error is None
    assert canceled[no_cancel].error == "Cancel is disabled for this service"
    assert canceled[cancelable].error == "Order is already completed"
    assert canceled[999].error == "Incorrect order ID"
    assert (await client.status(fresh)).status is OrderStatus.CANCELED


async def test_refill_of_an_unknown_order_is_a_panel_error(client: PanelClient) -> None:
    with pytest.raises(PanelError, match="Incorrect order ID"):
        await client.refill(42)


async def test_250_ids_make_three_status_calls(client: PanelClient, sandbox: SandboxPanel) -> None:
    order = await client.add(1448, link="https://instagram.com/x", quantity=50)
    ids = [order, *range(1, 250), order]  # a duplicate too
    results = await client.statuses(ids)
    assert actions(sandbox, "status") == 3
    sizes = sorted(len(r.params["orders"].split(",")) for r in sandbox.request_log[-3:])
    assert sizes == [50, 100, 100]
    assert len(results) == 250
    assert results[order].status is OrderStatus.PENDING
    assert results[17].error == "Incorrect order ID"


async def test_empty_batches_make_no_request(client: PanelClient, sandbox: SandboxPanel) -> None:
    assert await client.statuses([]) == {}
    assert await client.cancel(()) == {}
    assert sandbox.request_log == []


async def test_session_is_created_lazily_and_reused(sandbox: SandboxPanel) -> None:
    assert sandbox.url is not None
    panel_client = make_client(sandbox.url)
    assert panel_client._session is None
    await panel_client.balance()
    session = panel_client._session
    await panel_client.services()
    assert panel_client._session is session
    await panel_client.close()
    assert session is not None and session.closed


# --- the seed's answers, served verbatim ---------------------------------------------------------


async def test_every_method_reads_the_seed_answers() -> None:
    server, url = await scripted(seed_answer())
    try:
        async with make_client(url) as c:
            assert (await c.balance()).balance == Decimal("100.84292")
            assert [s.id for s in await c.services()] == [1448, 1452]
            assert await c.add(1448, link="https://instagram.com/x", quantity=100) == 23501
            assert (await c.status(1)).remains == 157
            statuses = await c.statuses([1, 10, 100])
            assert statuses[10].error == "Incorrect order ID"
            assert statuses[100].status is OrderStatus.IN_PROGRESS
            assert await c.refill(1) == 1
            assert (await c.refills([1, 2, 3]))[3].error == "Incorrect order ID"
            assert (await c.refill_status(1)).status is RefillStatus.COMPLETED
            assert (await c.refill_statuses([1, 2, 3]))[3].error == "Refill not found"
            cancels = await c.cancel([9, 2])
            assert (cancels[2].ok, cancels[9].error) == (True, "Incorrect order ID")
    finally:
        await server.stop()
    assert server.requests[0] == {"key": KEY, "action": "balance"}
    add = {"service": "1448", "link": "https://instagram.com/x", "quantity": "100"}
    assert server.requests[2] == {"key": KEY, "action": "add", **add}
    assert server.requests[-2] == {"key": KEY, "action": "refill_status", "refills": "1,2,3"}


async def test_an_id_missing_from_the_answer_is_reported() -> None:
    server, url = await scripted(text_answer('{"1": {"status": "Pending", "charge": "1"}}'))
    try:
        async with make_client(url) as c:
            results = await c.statuses([1, 2])
    finally:
        await server.stop()
    assert results[1].status is OrderStatus.PENDING
    assert results[2].error == "missing from answer"


# --- failures -----------------------------------------------------------------------------------


async def test_html_502_is_unavailable(client: PanelClient, sandbox: SandboxPanel) -> None:
    for _ in range(3):  # the first call and its two retries
        sandbox.fail_next_http("balance")
    with pytest.raises(PanelUnavailable, match="HTTP 502 on action=balance") as caught:
        await client.balance()
    assert not isinstance(caught.value, OrderOutcomeUnknown)
    assert actions(sandbox, "balance") == 3


async def test_read_only_call_is_retried_after_one_502(
    client: PanelClient, sandbox: SandboxPanel
) -> None:
    sandbox.fail_next_http("status", status=503, body="<html>busy</html>")
    result = await client.statuses([1])
    assert result[1].error == "Incorrect order ID"
    assert actions(sandbox, "status") == 2


async def test_invalid_json_is_unavailable(client: PanelClient, sandbox: SandboxPanel) -> None:
    for _ in range(3):
        sandbox.invalid_json_next("services")
    with pytest.raises(PanelUnavailable, match="invalid JSON"):
        await client.services()


async def test_html_page_with_200_is_unavailable() -> None:
    server, url = await scripted(text_answer("<html>maintenance</html>", content_type="text/html"))
    try:
        async with make_client(url, retries=0) as c:
            with pytest.raises(PanelUnavailable, match="HTML page"):
                await c.balance()
    finally:
        await server.stop()


async def test_unexpected_shape_is_unavailable_or_unknown_for_add() -> None:
    server, url = await scripted(text_answer('["not", "an", "object"]'))
    try:
        async with make_client(url, retries=0) as c:
            with pytest.raises(PanelUnavailable, match="unexpected answer shape") as caught:
                await c.balance()
            assert not isinstance(caught.value, OrderOutcomeUnknown)
            with pytest.raises(OrderOutcomeUnknown, match="unexpected answer shape"):
                await c.add(1, link="https://x.test", quantity=10)
    finally:
        await server.stop()


async def test_timeout_on_add_is_unknown_and_sent_once(sandbox: SandboxPanel) -> None:
    assert sandbox.url is not None
    sandbox.delay_next("add", 0.5)
    async with make_client(sandbox.url, timeout=0.1) as c:
        with pytest.raises(OrderOutcomeUnknown, match="timeout on action=add"):
            await c.add(1448, link="https://instagram.com/x", quantity=100)
    assert actions(sandbox, "add") == 1
    assert len(sandbox.orders) == 1  # the panel did place it: that is why it is "unknown"


async def test_5xx_on_add_is_unknown_and_not_retried(
    client: PanelClient, sandbox: SandboxPanel
) -> None:
    sandbox.fail_next_http("add", status=502)
    with pytest.raises(OrderOutcomeUnknown, match="HTTP 502 on action=add"):
        await client.add(1448, link="https://instagram.com/x", quantity=100)
    assert actions(sandbox, "add") == 1


async def test_invalid_json_on_add_is_unknown(client: PanelClient, sandbox: SandboxPanel) -> None:
    sandbox.invalid_json_next("add")
    with pytest.raises(OrderOutcomeUnknown, match="invalid JSON"):
        await client.add(1448, link="https://instagram.com/x", quantity=100)
    assert actions(sandbox, "add") == 1


@pytest.mark.parametrize("action", ["refill", "cancel"])
async def test_changing_calls_are_not_retried(
    client: PanelClient, sandbox: SandboxPanel, action: str
) -> None:
    sandbox.fail_next_http(action)
    with pytest.raises(PanelUnavailable) as caught:
        await (client.refill(1) if action == "refill" else client.cancel([1]))
    assert not isinstance(caught.value, OrderOutcomeUnknown)
    assert actions(sandbox, action) == 1


async def test_connection_refused_is_unavailable_not_unknown() -> None:
    async with make_client(f"http://127.0.0.1:{unused_port()}/api/v2", retries=1) as c:
        with pytest.raises(PanelUnavailable, match="cannot connect") as caught:
            await c.add(1448, link="https://instagram.com/x", quantity=100)
        assert not isinstance(caught.value, OrderOutcomeUnknown)
        with pytest.raises(PanelUnavailable, match="on action=balance"):
            await c.balance()


async def test_panel_error_keeps_the_message_and_is_not_retried(
    client: PanelClient, sandbox: SandboxPanel
) -> None:
    sandbox.fail_next_add()
    with pytest.raises(PanelError) as caught:
        await client.add(1448, link="https://instagram.com/x", quantity=100)
    assert caught.value.message == str(caught.value) == "Not enough funds on balance"
    sandbox.set_balance(Decimal("0.5"))
    with pytest.raises(PanelError, match=r"^Not enough funds on balance$"):
        await client.add(1448, link="https://instagram.com/x", quantity=1000)
    with pytest.raises(PanelError, match=r"^Quantity less than minimal 50$"):
        await client.add(1448, link="https://instagram.com/x", quantity=1)
    assert actions(sandbox, "add") == 3
    assert sandbox.orders == {}


async def test_wrong_key_is_a_panel_error(sandbox: SandboxPanel) -> None:
    assert sandbox.url is not None
    async with PanelClient(sandbox.url, "wrong", retry_backoff=0.01) as c:
        with pytest.raises(PanelError, match=r"^Invalid API key$"):
            await c.balance()
    assert actions(sandbox, "balance") == 1


async def test_json_error_with_a_4xx_status_is_a_panel_error() -> None:
    server, url = await scripted(text_answer('{"error": "Invalid API key"}', status=401))
    try:
        async with make_client(url) as c:
            with pytest.raises(PanelError, match="Invalid API key"):
                await c.balance()
    finally:
        await server.stop()
    assert len(server.requests) == 1


async def test_redirect_is_not_followed() -> None:
    async def redirect(_params: dict[str, str]) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    server, url = await scripted(redirect)
    try:
        async with make_client(url, retries=0) as c:
            with pytest.raises(PanelUnavailable, match="HTTP 302"):
                await c.balance()
            with pytest.raises(OrderOutcomeUnknown, match="HTTP 302"):
                await c.add(1, link="https://x.test", quantity=10)
    finally:
        await server.stop()
    assert server.other_hits == 0
    assert len(server.requests) == 2


async def test_one_failed_chunk_does_not_hide_the_others(
    client: PanelClient, sandbox: SandboxPanel
) -> None:
    order = await client.add(1448, link="https://instagram.com/x", quantity=50)
    sandbox.fail_next_http("cancel")
    results = await client.cancel([order, *range(1, 150)])
    failed = [r for r in results.values() if r.error and r.error.startswith("panel unavailable")]
    assert len(failed) in (50, 100)
    assert len(results) == 150
    assert actions(sandbox, "cancel") == 2


async def test_chunks_run_with_bounded_concurrency() -> None:
    async def slow(params: dict[str, str]) -> web.StreamResponse:
        await asyncio.sleep(0.05)
        return web.json_response({i: {"status": "Pending"} for i in params["orders"].split(",")})

    server, url = await scripted(slow)
    try:
        async with make_client(url, max_concurrency=2) as c:
            results = await c.statuses(range(1, 501))
    finally:
        await server.stop()
    assert len(server.requests) == 5
    assert server.max_in_flight == 2
    assert all(r.status is OrderStatus.PENDING for r in results.values())


async def test_rate_limit_is_respected(sandbox: SandboxPanel) -> None:
    assert sandbox.url is not None
    async with make_client(sandbox.url, max_rps=5, max_concurrency=10) as c:
        started = time.monotonic()
        await asyncio.gather(*(c.balance() for _ in range(10)))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.8  # 5 at once, then one every 0.2 s: about 1 s


# --- the key stays secret -----------------------------------------------------------------------


async def test_key_never_in_logs_errors_or_repr(
    sandbox: SandboxPanel, caplog: pytest.LogCaptureFixture
) -> None:
    assert sandbox.url is not None
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    sandbox.fail_next_http("balance")
    sandbox.invalid_json_next("status")
    sandbox.fail_next_http("add")
    sandbox.delay_next("refill", 0.4)
    async with make_client(sandbox.url, timeout=0.2, retries=1) as c:
        assert KEY not in repr(c) and sandbox.url in repr(c)
        await c.balance()
        await c.statuses([1])
        for call in (
            c.add(1448, link="https://instagram.com/x", quantity=100),
            c.refill(1),
            c.status(1),
        ):
            with pytest.raises((PanelError, PanelUnavailable)) as caught:
                await call
            errors.append(caught.value)
    async with PanelClient(f"http://127.0.0.1:{unused_port()}/api/v2", KEY, retries=0) as c:
        with pytest.raises(PanelUnavailable) as refused:
            await c.balance()
        errors.append(refused.value)
    assert caplog.text
    assert KEY not in caplog.text
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            assert KEY not in str(chain) and KEY not in repr(chain)
            chain = chain.__cause__ or chain.__context__
    assert all("key" not in r.params for r in sandbox.request_log)
