"""End-to-end smoke: the real dispatcher and Bot over HTTP answer /start and /help."""

from __future__ import annotations

import pytest

from tests.harness import ADMIN, ALICE, BotUnderTest


async def test_start_lists_the_commands(running_bot: BotUnderTest) -> None:
    alice = running_bot.user(ALICE, "Alice")
    reply = await alice.send("/start")
    assert "Hello, Alice" in reply.text
    assert "/order" in reply.text and "/orders" in reply.text
    assert "/balance" not in reply.text


async def test_admin_help_lists_admin_commands(running_bot: BotUnderTest) -> None:
    admin = running_bot.user(ADMIN, "Ada")
    reply = await admin.send("/help")
    assert "/balance" in reply.text


async def test_command_menu_is_set(running_bot: BotUnderTest) -> None:
    await running_bot.emulator.settle()
    assert running_bot.emulator.calls("setMyCommands")


async def test_filipino_user_gets_filipino(running_bot: BotUnderTest) -> None:
    juan = running_bot.user(ALICE, "Juan", language="fil")
    reply = await juan.send("/start")
    assert "Kumusta" in reply.text


async def test_stranger_sees_how_to_get_access(running_bot: BotUnderTest) -> None:
    stranger = running_bot.user(1999, "Eve")
    reply = await stranger.send("/start")
    assert "1999" in reply.text and "admin" in reply.text
    assert "/orders" not in reply.text


async def test_a_failing_handler_gets_an_apology(
    running_bot: BotUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    assert running_bot.services is not None

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    running_bot.services.ordering.list_orders = broken  # type: ignore[method-assign]
    alice = running_bot.user(ALICE, "Alice")
    reply = await alice.send("/orders")
    assert "Sorry, something went wrong" in reply.text
    assert "database went away" not in reply.text
    reply = await alice.send("/help")  # one bad update never stops the bot
    assert "/order" in reply.text
    assert any("RuntimeError" in record.getMessage() for record in caplog.records)


async def test_filipino_conversation(running_bot: BotUnderTest) -> None:
    juan = running_bot.user(ALICE, "Juan", language="fil")
    menu = await juan.send("/order")
    assert "Pumili ng kategorya" in menu.text
    await juan.press("Instagram (1)")
    prompt = await juan.press("Instagram Followers")
    assert "link" in prompt.text.lower()
    quantity = await juan.send("https://instagram.com/juan")
    assert "dami" in quantity.text.lower()
    error = await juan.send("abc")
    assert "Please" not in error.text
    summary = await juan.send("100")
    assert "Kumpirmahin" in str(summary.buttons)
