"""End-to-end smoke: the real dispatcher and Bot over HTTP answer /start and /help."""

from __future__ import annotations

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
