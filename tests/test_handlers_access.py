"""A stranger asks for access in one tap; the admins answer with one (in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram.types import Chat, InlineKeyboardMarkup, Message

from playground.telegram.recording import BOT_USER
from storage import outbox
from tests.rig import ADMIN, Rig, alerts, last_menu

STRANGER = 1999


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await Rig.start(tmp_path)
    await rig.send(ADMIN, "/start")
    yield rig
    await rig.stop()


async def queued(rig: Rig) -> list[outbox.OutboxMessage]:
    async with rig.services.sessions() as session:
        return list(await outbox.pending(session))


async def test_asking_for_access_reaches_the_admins_once_a_day(rig: Rig) -> None:
    refusal = last_menu(await rig.send(STRANGER, "/order"))
    assert "only open to approved users" in (refusal.text or "")
    asked = await rig.press(STRANGER, refusal, "Ask for access")
    assert alerts(asked) == ["Your request went to the admins. I will tell you here."]
    [request] = await queued(rig)
    assert request.chat_id == ADMIN and "asks to be allowed to order" in request.text
    assert "User1999" in request.text and "1999" in request.text
    again = await rig.press(STRANGER, refusal, "Ask for access")
    assert alerts(again) == ["You asked already today; the admins have your request."]
    assert len(await queued(rig)) == 1

    shown = Message(
        message_id=77,
        date=datetime.now(UTC),
        chat=Chat(id=ADMIN, type="private"),
        from_user=BOT_USER,
        text=request.text,
        reply_markup=InlineKeyboardMarkup.model_validate(request.reply_markup),
    )
    await rig.press(ADMIN, shown, "Allow")
    told = [row for row in await queued(rig) if row.chat_id == STRANGER]
    assert [row.text for row in told] == ["✅ You may now place orders. Send /order to start."]
    menu = last_menu(await rig.send(STRANGER, "/order"))
    assert "Choose a category" in (menu.text or "")
