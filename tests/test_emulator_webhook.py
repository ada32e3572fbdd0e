"""The emulator's webhook mode: setWebhook, one update per POST with the secret header, in order
per chat, and only failed or timed-out updates sent again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web

from playground.telegram import SECRET_HEADER, TelegramEmulator

TOKEN = "123456:TEST-token"


class Hook:
    """A webhook receiver whose answers the test decides: 200, an error, or a hang."""

    def __init__(self) -> None:
        self.received: list[tuple[int, str | None]] = []  # update_id, secret header
        self.fail_ids: set[int] = set()  # answer 500 once for these
        self.hang_ids: set[int] = set()  # never answer these once (the POST times out)
        self.reply: dict[str, object] | None = None
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        update = await request.json()
        update_id = int(update["update_id"])
        self.received.append((update_id, request.headers.get(SECRET_HEADER)))
        if update_id in self.hang_ids:
            self.hang_ids.discard(update_id)
            await asyncio.sleep(30)
        if update_id in self.fail_ids:
            self.fail_ids.discard(update_id)
            return web.Response(status=500)
        return web.json_response(self.reply or {})

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/webhook", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/webhook"

    def ids(self) -> list[int]:
        return [update_id for update_id, _ in self.received]


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    receiver = Hook()
    yield receiver
    if receiver.runner is not None:
        await receiver.runner.cleanup()


async def call(emulator: TelegramEmulator, method: str, **params: object) -> dict[str, object]:
    async with ClientSession() as session:
        url = f"{emulator.url}/bot{TOKEN}/{method}"
        async with session.post(url, json=params) as response:
            answer: dict[str, object] = await response.json()
            return answer


async def test_updates_are_posted_with_the_secret(hook: Hook) -> None:
    async with TelegramEmulator(token=TOKEN) as emulator:
        url = await hook.start()
        answer = await call(emulator, "setWebhook", url=url, secret_token="s3cret")
        assert answer == {"ok": True, "result": True}
        alice = emulator.user(1001, first_name="Alice")
        alice.send_nowait("/start")
        alice.send_nowait("hello")
        assert await emulator.wait_until(lambda: len(hook.received) == 2, 5)
        assert hook.received == [(1, "s3cret"), (2, "s3cret")]
        await emulator.settle()
        info = await call(emulator, "getWebhookInfo")
        assert info["result"] == {
            "url": url,
            "has_custom_certificate": False,
            "pending_update_count": 0,
            "max_connections": 40,
        }
        conflict = await call(emulator, "getUpdates")
        assert conflict["error_code"] == 409


async def test_only_failed_updates_are_sent_again_and_a_chat_waits(hook: Hook) -> None:
    async with TelegramEmulator(token=TOKEN, webhook_timeout=0.5) as emulator:
        url = await hook.start()
        await call(emulator, "setWebhook", url=url)
        hook.fail_ids, hook.hang_ids = {1}, {3}
        alice = emulator.user(1001, first_name="Alice")
        bob = emulator.user(1002, first_name="Bob")
        alice.send_nowait("one")  # 1: fails once
        alice.send_nowait("two")  # 2: waits for 1
        bob.send_nowait("three")  # 3: times out once; Alice's chat does not wait for it
        assert await emulator.wait_until(lambda: emulator.webhook_pending() == 0, 10)
        alice_ids = [i for i in hook.ids() if i in (1, 2)]
        assert alice_ids == [1, 1, 2]
        assert hook.ids().count(3) == 2
        failed = [(d.update_id, d.status) for d in emulator.deliveries if d.error]
        assert sorted(failed, key=lambda f: f[0]) == [(1, 500), (3, None)]
        assert sorted(d.update_id for d in emulator.deliveries if d.status == 200) == [1, 2, 3]


async def test_a_method_in_the_answer_is_executed(hook: Hook) -> None:
    async with TelegramEmulator(token=TOKEN) as emulator:
        url = await hook.start()
        await call(emulator, "setWebhook", url=url)
        hook.reply = {"method": "sendMessage", "chat_id": 1001, "text": "from the answer"}
        alice = emulator.user(1001, first_name="Alice")
        reply = await alice.send("/start")
        assert reply.text == "from the answer"


async def test_delete_webhook_returns_to_get_updates(hook: Hook) -> None:
    async with TelegramEmulator(token=TOKEN) as emulator:
        url = await hook.start()
        await call(emulator, "setWebhook", url=url)
        assert emulator.webhook_url() == url
        await call(emulator, "deleteWebhook")
        assert emulator.webhook_url() is None
        emulator.user(1001, first_name="Alice").send_nowait("/start")
        answer = await call(emulator, "getUpdates")
        assert [u["update_id"] for u in answer["result"]] == [1]  # type: ignore[union-attr]
        assert hook.received == []


async def test_set_webhook_refuses_a_bad_url_or_secret() -> None:
    async with TelegramEmulator(token=TOKEN) as emulator:
        no_url = await call(emulator, "setWebhook", url="ftp://example")
        assert no_url["error_code"] == 400
        bad_secret = await call(emulator, "setWebhook", url="http://x/", secret_token="a b")
        assert bad_secret["error_code"] == 400
