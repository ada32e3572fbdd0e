"""The chat stays tidy and speaks the member's language (in-process, see tests/rig.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram.methods import AnswerCallbackQuery, EditMessageReplyMarkup, SendMessage
from aiogram.types import InlineKeyboardMarkup, ReplyKeyboardMarkup

from tests.rig import ADMIN, ALICE, GROUP, Rig, buttons, last_menu, sent_messages


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await Rig.start(tmp_path)
    yield rig
    await rig.stop()


async def test_the_menu_keyboard_follows_a_new_language(rig: Rig) -> None:
    await rig.send(ALICE, "/start")
    choice = last_menu(await rig.send(ALICE, "/language"))
    sent = await rig.press(ALICE, choice, "Filipino")
    [menu] = [r for r in sent if isinstance(r, SendMessage)]
    assert isinstance(menu.reply_markup, ReplyKeyboardMarkup)
    labels = [button.text for row in menu.reply_markup.keyboard for button in row]
    assert labels and all("New order" not in label for label in labels), labels


@pytest.mark.parametrize("command", ["/balance", "/stats", "/unknown"])
async def test_figures_asked_in_a_group_stay_private(rig: Rig, command: str) -> None:
    sent = await rig.send(ADMIN, command, chat=GROUP)
    [answer] = [r for r in sent if isinstance(r, SendMessage)]
    assert answer.text == "Figures are shown in a private chat only."
    assert isinstance(answer.reply_markup, InlineKeyboardMarkup)
    assert str(answer.reply_markup.inline_keyboard[0][0].url).startswith("https://t.me/")


async def test_a_validation_error_retires_the_old_prompt(rig: Rig) -> None:
    menu = last_menu(await rig.send(ALICE, "/order"))
    services = last_menu(await rig.press(ALICE, menu, "Instagram Followers ("))
    await rig.press(ALICE, services, "Instagram Followers [Real")
    await rig.send(ALICE, "https://instagram.com/alice")
    sent = await rig.send(ALICE, "lots")  # not a number
    retired = [r for r in sent if isinstance(r, EditMessageReplyMarkup)]
    assert [r.message_id for r in retired if r.reply_markup is None], sent
    assert "whole number" in (last_menu(sent).text or "")


async def test_an_old_menu_from_a_flow_left_behind_is_stale(rig: Rig) -> None:
    first = last_menu(await rig.send(ALICE, "/order"))
    await rig.send(ALICE, "/order")  # a new order: the first menu is retired
    pressed = await rig.press(ALICE, first, "Instagram")
    texts = [m.text or "" for m in sent_messages(pressed)]
    assert texts == ["That menu is out of date. What would you like to do?"], texts
    assert [b.text for b in buttons(sent_messages(pressed)[0])] == ["🛒 New order", "📋 My orders"]


async def test_words_typed_at_the_category_step_search(rig: Rig) -> None:
    await rig.send(ALICE, "/order")
    found = last_menu(await rig.send(ALICE, "tiktok"))
    assert "Choose a service" in (found.text or "")
    assert any("TikTok" in b.text for b in buttons(found))


async def test_favourites_save_the_taps_of_a_repeat_customer(rig: Rig) -> None:
    menu = last_menu(await rig.send(ALICE, "/order"))
    assert not any("Favourites" in b.text for b in buttons(menu))  # none yet
    services = last_menu(await rig.press(ALICE, menu, "Instagram Followers ("))
    card = last_menu(await rig.press(ALICE, services, "Instagram Followers [Real"))
    starred = await rig.press(ALICE, card, "Add to favourites")
    assert [r.text for r in starred if isinstance(r, AnswerCallbackQuery)] == [
        "Added to favourites."
    ]
    [flipped] = [r for r in starred if isinstance(r, EditMessageReplyMarkup)]
    assert flipped.reply_markup is not None
    assert "In favourites" in flipped.reply_markup.inline_keyboard[0][0].text

    menu = last_menu(await rig.send(ALICE, "/order"))
    assert buttons(menu)[0].text == "★ Favourites"
    favourites = last_menu(await rig.press(ALICE, menu, "Favourites"))
    assert any("Instagram Followers [Real" in b.text for b in buttons(favourites))
    card = last_menu(await rig.press(ALICE, favourites, "Instagram Followers [Real"))
    await rig.press(ALICE, card, "In favourites")  # one tap removes it
    menu = last_menu(await rig.send(ALICE, "/order"))
    assert not any("Favourites" in b.text for b in buttons(menu))
