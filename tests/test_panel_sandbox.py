"""The sandbox panel: catalog, validation, pricing, order and refill lifecycles, controls."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from bot.panel import OrderStatus, RefillStatus
from bot.panel.models import decode_json, read_services
from playground.sandbox import (
    DEFAULT_CATALOG,
    SEED_CATALOG,
    TYPE_RULES,
    SandboxPanel,
    generate_catalog,
)
from tests.panel_fixtures import SEED_SERVICES, FakeClock

KEY = "sandbox-key"
LINK = "https://instagram.com/someone"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def panel(clock: FakeClock) -> SandboxPanel:
    return SandboxPanel(clock=clock, step_seconds=10)


def call(panel: SandboxPanel, action: str, **fields: Any) -> Any:
    """One API request without HTTP; the answer as a client would decode it."""
    params = {"key": KEY, "action": action, **{k: str(v) for k, v in fields.items()}}
    return decode_json(json.dumps(panel.handle(params)))


def add(panel: SandboxPanel, service: int, **fields: Any) -> int:
    answer = call(panel, "add", service=service, **fields)
    assert "order" in answer, answer
    return int(answer["order"])


# --- catalog ------------------------------------------------------------------------------------


def test_catalog_is_realistic_and_covers_every_type() -> None:
    services = read_services(DEFAULT_CATALOG)
    assert len(services) >= 40
    assert {s.type for s in services} == set(TYPE_RULES)
    assert len({s.category for s in services}) >= 10
    names = " ".join(s.name for s in services)
    for platform in ("Instagram", "TikTok", "YouTube", "Facebook", "Telegram", "Twitter/X"):
        assert platform in names
    assert "Spotify" in names and "Website Traffic" in names
    assert any(s.dripfeed for s in services if s.type == "Default")
    assert {s.refill for s in services} == {s.cancel for s in services} == {True, False}
    assert any(s.desc for s in services)
    assert {str(s.rate) for s in services} >= {"0.90", "8", "0.0315", "12.5"}


def test_catalog_flags_come_in_mixed_forms() -> None:
    refill_forms = {type(s.get("refill", "missing")).__name__ + str(s.get("refill"))
                    for s in DEFAULT_CATALOG}  # fmt: skip
    assert {"boolTrue", "str1", "str0", "strNone"} <= refill_forms
    assert any(isinstance(s["min"], int) for s in DEFAULT_CATALOG)


def test_seed_services_are_served_verbatim(clock: FakeClock) -> None:
    assert json.loads(SEED_SERVICES) == SEED_CATALOG
    panel = SandboxPanel(services=SEED_CATALOG, clock=clock)
    assert call(panel, "services") == json.loads(SEED_SERVICES)


def test_the_default_catalog_names_the_seed_services_in_english(panel: SandboxPanel) -> None:
    served = {s["service"]: s for s in call(panel, "services")}
    for seed in json.loads(SEED_SERVICES):
        assert served[seed["service"]] == seed | {"name": served[seed["service"]]["name"]}
    assert served[1448]["name"] == "Instagram Followers"
    assert served[1452]["name"] == "Facebook Comments"


def test_generated_catalog_for_benchmarks() -> None:
    catalog = generate_catalog(5000)
    assert len({s["service"] for s in catalog}) == 5000
    panel = SandboxPanel.from_catalog(catalog)
    assert len(panel.services) == 5000
    assert len(panel.handle({"key": KEY, "action": "services"})) == 5000


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"key": "nope", "action": "balance"}, "Invalid API key"),
        ({"action": "balance"}, "Invalid API key"),
        ({"key": KEY}, "Incorrect request"),
        ({"key": KEY, "action": "dance"}, "Invalid action"),
        ({"key": KEY, "action": "add", "service": "1", "link": LINK, "quantity": "100"},
         "Incorrect service ID"),
        ({"key": KEY, "action": "add", "service": "1448", "link": LINK, "quantity": "49"},
         "Quantity less than minimal 50"),
        ({"key": KEY, "action": "add", "service": "1448", "link": LINK, "quantity": "10001"},
         "Quantity more than maximal 10000"),
        ({"key": KEY, "action": "add", "service": "1448", "link": LINK, "quantity": "ten"},
         "Incorrect quantity"),
        ({"key": KEY, "action": "add", "service": "1448", "quantity": "100"},
         "Link is required"),
        ({"key": KEY, "action": "add", "service": "1448", "link": "not a link", "quantity": "100"},
         "Incorrect link"),
        ({"key": KEY, "action": "add", "service": "1452", "link": LINK}, "Comments are required"),
        ({"key": KEY, "action": "add", "service": "2031", "link": LINK, "quantity": "100"},
         "Usernames are required"),
        ({"key": KEY, "action": "add", "service": "2402", "link": LINK, "quantity": "100"},
         "Answer number is required"),
        ({"key": KEY, "action": "add", "service": "2040", "link": LINK, "min": "50",
          "max": "100", "delay": "0"}, "Username is required"),
        ({"key": KEY, "action": "add", "service": "2040", "username": "u", "min": "50",
          "max": "100", "delay": "7"}, "Incorrect delay"),
        ({"key": KEY, "action": "add", "service": "2040", "username": "u", "min": "50",
          "max": "100", "delay": "0", "expiry": "01/01/2001"}, "Incorrect expiry date"),
        ({"key": KEY, "action": "add", "service": "2002", "link": LINK, "quantity": "100",
          "runs": "2", "interval": "5"}, "Drip-feed is disabled for this service"),
        ({"key": KEY, "action": "add", "service": "2600", "link": LINK, "quantity": "10000000"},
         "Not enough funds on balance"),
        ({"key": KEY, "action": "status", "order": "1"}, "Incorrect order ID"),
        ({"key": KEY, "action": "refill", "order": "1"}, "Incorrect order ID"),
        ({"key": KEY, "action": "refill_status", "refill": "1"}, "Refill not found"),
    ],
)  # fmt: skip
def test_refusals(panel: SandboxPanel, params: dict[str, str], error: str) -> None:
    assert panel.handle(params) == {"error": error}
    assert panel.orders == {}
    assert panel.balance == Decimal("100.84292")


def test_too_many_ids_are_refused(panel: SandboxPanel) -> None:
    ids = ",".join(map(str, range(1, 102)))
    assert "error" in call(panel, "status", orders=ids)


# --- pricing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "fields", "charge"),
    [
        (1448, {"link": LINK, "quantity": 1000}, "0.90"),
        (2002, {"link": LINK, "quantity": 10}, "0.00032"),  # 0.000315 rounded to 5 places
        (2001, {"link": LINK, "quantity": 1000, "runs": 3, "interval": 30}, "3.75"),
        (2011, {"link": LINK}, "2.50"),
        (2021, {"link": LINK, "comments": "a\nb"}, "4.2"),
        (1452, {"link": LINK, "comments": "\n".join("abcdefghijkl")}, "0.096"),
        (2030, {"link": LINK, "usernames": "\n".join(f"u{i}" for i in range(20))}, "0.13"),
        (2031, {"link": LINK, "quantity": 200, "usernames": "a\nb"}, "1.15"),
        (2040, {"username": "u", "min": 100, "max": 200, "posts": 3, "delay": 0}, "0.09"),
    ],
)
def test_charges(panel: SandboxPanel, service: int, fields: dict[str, Any], charge: str) -> None:
    order = add(panel, service, **fields)
    assert panel.orders[order].charge == Decimal(charge)
    assert panel.balance == Decimal("100.84292") - Decimal(charge)


def test_every_type_accepts_its_fields(panel: SandboxPanel) -> None:
    samples = {
        "usernames": "alice\nbob", "hashtags": "#a\n#b", "hashtag": "#sale", "username": "bob",
        "media": "https://instagram.com/p/x", "answer_number": 2, "groups": "g1\ng2",
        "keywords": "smm\nbot", "comments": "one\ntwo", "min": 100, "max": 200, "delay": 0,
    }  # fmt: skip
    for service in panel.services.values():
        rule = TYPE_RULES[service.type]
        fields = {name: samples.get(name, LINK) for name in rule.needs}
        if "quantity" in rule.needs:
            fields["quantity"] = service.min
        if service.type == "Custom Comments":
            fields["comments"] = "\n".join(f"c{i}" for i in range(service.min))
        if service.type == "Mentions Custom List":
            fields["usernames"] = "\n".join(f"u{i}" for i in range(service.min))
        panel.set_balance(Decimal(1000))
        add(panel, service.id, **fields)


# --- lifecycles over simulated time -------------------------------------------------------------


def test_order_moves_pending_in_progress_completed(panel: SandboxPanel) -> None:
    order = add(panel, 1448, link=LINK, quantity=1000)
    status = call(panel, "status", order=order)
    assert status == {"charge": "0.90000", "start_count": None, "status": "Pending",
                      "remains": "1000", "currency": "USD"}  # fmt: skip
    panel.advance(15)
    status = call(panel, "status", order=order)
    assert status["status"] == "In progress"
    assert int(status["start_count"]) >= 0
    assert 0 < int(status["remains"]) < 1000
    panel.advance(5)
    assert call(panel, "status", order=order)["status"] == "Completed"
    assert call(panel, "status", order=order)["remains"] == "0"


def test_every_fifth_order_ends_partial_with_a_refund(panel: SandboxPanel) -> None:
    orders = [add(panel, 1448, link=LINK, quantity=1000) for _ in range(5)]
    panel.advance(20)
    finished = panel.orders
    assert [finished[o].status for o in orders] == [OrderStatus.COMPLETED] * 4 + [
        OrderStatus.PARTIAL
    ]
    partial = finished[orders[-1]]
    assert partial.remains == 142
    assert partial.refunded == Decimal("0.12780")
    assert partial.charge == Decimal("0.77220")
    assert panel.balance == Decimal("100.84292") - 4 * Decimal("0.90") - Decimal("0.77220")


def test_a_promised_partial_ends_the_next_order_that_can_end_partial(
    panel: SandboxPanel,
) -> None:
    panel.partial_next()
    assert panel.state()["partial_next"] == 1
    package = add(panel, 2011, link=LINK)  # a package cannot end Partial: the promise waits
    plain = add(panel, 1448, link=LINK, quantity=1000)
    after = add(panel, 1448, link=LINK, quantity=1000)
    panel.advance(20)
    finished = panel.orders
    assert finished[package].status == OrderStatus.COMPLETED
    assert (finished[plain].status, finished[plain].remains) == (OrderStatus.PARTIAL, 142)
    assert finished[after].status == OrderStatus.COMPLETED
    assert panel.state()["partial_next"] == 0


def test_drip_feed_takes_runs_times_as_long(panel: SandboxPanel) -> None:
    order = add(panel, 2001, link=LINK, quantity=100, runs=3, interval=10)
    panel.advance(29)
    assert panel.orders[order].status == OrderStatus.PENDING
    panel.advance(30)
    assert panel.orders[order].status == OrderStatus.IN_PROGRESS
    panel.advance(1)
    assert panel.orders[order].status == OrderStatus.COMPLETED


def test_subscription_reports_active(panel: SandboxPanel) -> None:
    order = add(panel, 2040, username="bob", min=50, max=100, delay=0)
    panel.advance(10)
    assert call(panel, "status", order=order)["status"] == "Active"
    panel.advance(10)
    assert call(panel, "status", order=order)["status"] == "Completed"


def test_speed_up_with_the_injected_clock(panel: SandboxPanel, clock: FakeClock) -> None:
    order = add(panel, 1448, link=LINK, quantity=100)
    panel.speed_up(10)
    clock.now += 1.5
    assert panel.now() == pytest.approx(15)
    assert panel.orders[order].status == OrderStatus.IN_PROGRESS
    panel.speed_up(0)
    clock.now += 100
    assert panel.orders[order].status == OrderStatus.IN_PROGRESS


def test_multi_status_is_keyed_by_id(panel: SandboxPanel) -> None:
    order = add(panel, 1448, link=LINK, quantity=100)
    answer = call(panel, "status", orders=f"{order},10,abc")
    assert set(answer) == {str(order), "10", "abc"}
    assert answer["10"] == {"error": "Incorrect order ID"}
    assert answer[str(order)]["status"] == "Pending"


def test_refills_move_and_some_are_rejected(panel: SandboxPanel) -> None:
    orders = [add(panel, 2001, link=LINK, quantity=100) for _ in range(4)]
    pending = add(panel, 2001, link=LINK, quantity=100)
    no_refill = add(panel, 2002, link=LINK, quantity=100)
    assert call(panel, "refill", order=pending) == {"error": "Order is not eligible for refill"}
    panel.advance(20)
    assert call(panel, "refill", order=no_refill) == {
        "error": "Refill is disabled for this service"
    }
    assert call(panel, "refill", order=orders[0]) == {"refill": "1"}
    assert call(panel, "refill", order=orders[0]) == {"error": "Refill is already in progress"}
    answer = call(panel, "refill", orders=",".join(map(str, [*orders[1:], 999])))
    assert answer == [
        {"order": orders[1], "refill": 2},
        {"order": orders[2], "refill": 3},
        {"order": orders[3], "refill": 4},
        {"order": 999, "refill": {"error": "Incorrect order ID"}},
    ]
    assert call(panel, "refill_status", refill=1) == {"status": "Pending"}
    panel.advance(10)
    assert call(panel, "refill_status", refill=1) == {"status": "In progress"}
    panel.advance(10)
    assert call(panel, "refill_status", refills="1,4,9") == [
        {"refill": 1, "status": "Completed"},
        {"refill": 4, "status": "Rejected"},
        {"refill": 9, "status": {"error": "Refill not found"}},
    ]
    assert panel.refills[4].status is RefillStatus.REJECTED


def test_cancel_refunds_in_full(panel: SandboxPanel) -> None:
    cancelable = add(panel, 2100, link=LINK, quantity=1000)
    no_cancel = add(panel, 2002, link=LINK, quantity=100)
    done = add(panel, 2100, link=LINK, quantity=100)
    panel.advance(20)
    again = add(panel, 2100, link=LINK, quantity=1000)
    before = panel.balance
    answer = call(panel, "cancel", orders=f"{again},{no_cancel},{done},9")
    assert answer == [
        {"order": again, "cancel": 1},
        {"order": no_cancel, "cancel": {"error": "Cancel is disabled for this service"}},
        {"order": done, "cancel": {"error": "Order is already completed"}},
        {"order": 9, "cancel": {"error": "Incorrect order ID"}},
    ]
    assert panel.balance == before + Decimal("2.1")
    assert panel.orders[again].status == OrderStatus.CANCELED
    assert panel.orders[cancelable].status == OrderStatus.COMPLETED
    assert call(panel, "cancel", orders=str(again))[0]["cancel"] == {
        "error": "Order is already canceled"
    }


def test_fail_next_add_and_request_log(panel: SandboxPanel) -> None:
    panel.fail_next_add("Service is temporarily disabled")
    assert call(panel, "add", service=1448, link=LINK, quantity=100) == {
        "error": "Service is temporarily disabled"
    }
    add(panel, 1448, link=LINK, quantity=100)


# --- HTTP: paths, bodies, controls, standalone ---------------------------------------------------


@pytest.fixture
async def served(clock: FakeClock) -> AsyncIterator[tuple[SandboxPanel, aiohttp.ClientSession]]:
    async with SandboxPanel(clock=clock) as panel, aiohttp.ClientSession() as session:
        yield panel, session


async def test_api_over_http_form_json_and_root_path(
    served: tuple[SandboxPanel, aiohttp.ClientSession],
) -> None:
    panel, session = served
    assert panel.url is not None and panel.url.endswith("/api/v2")
    form = {"key": KEY, "action": "balance"}
    async with session.post(panel.url, data=form) as resp:
        assert await resp.json() == {"balance": "100.84292", "currency": "USD"}
    async with session.post(f"{panel.base_url}/", json={"key": KEY, "action": "services"}) as resp:
        assert len(await resp.json()) == len(DEFAULT_CATALOG)
    body = {"key": KEY, "action": "add", "service": 1452, "link": LINK, "comments": ["a"] * 10}
    async with session.post(panel.url, json=body) as resp:
        assert "order" in await resp.json()
    assert panel.actions() == ["balance", "services", "add"]
    assert all("key" not in r.params for r in panel.request_log)
    assert panel.request_log[1].path == "/"


async def test_control_api(served: tuple[SandboxPanel, aiohttp.ClientSession]) -> None:
    panel, session = served
    base = f"{panel.base_url}/sandbox"
    panel.handle({"key": KEY, "action": "add", "service": "1448", "link": LINK, "quantity": "50"})
    async with session.get(f"{base}/state") as resp:
        state = await resp.json()
    assert state["balance"] == "100.79792"
    assert state["currency"] == "USD"
    assert state["orders"] == {"total": 1, "Pending": 1}
    async with session.post(f"{base}/advance", json={"seconds": 25}) as resp:
        assert (await resp.json())["orders"] == {"total": 1, "Completed": 1}
    async with session.post(f"{base}/speed", json={"factor": 60}) as resp:
        assert (await resp.json())["speed"] == 60
    async with session.post(f"{base}/fail-next-add", json={"message": "No"}) as resp:
        assert resp.status == 200
    assert panel.handle({"key": KEY, "action": "add"}) == {"error": "No"}
    async with session.post(f"{base}/balance", json={"balance": "5.5"}) as resp:
        assert (await resp.json())["balance"] == "5.50000"
    async with session.post(f"{base}/advance", json={"seconds": "soon"}) as resp:
        assert resp.status == 400


async def test_standalone_run_prints_url_and_key() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "playground.sandbox", "--port", "0", "--key", "k-123",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        second = (await asyncio.wait_for(process.stdout.readline(), 5)).decode()
        url = first.split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v2")
        assert second.strip().endswith("k-123")
        form = {"key": "k-123", "action": "services"}
        async with aiohttp.ClientSession() as session, session.post(url, data=form) as resp:
            assert len(await resp.json()) == len(DEFAULT_CATALOG)
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 10) == 0
