"""The Telegram emulator, driven by a real aiogram Bot and Dispatcher over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router, html
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandStart
from aiogram.types import (
    BotCommand,
    CallbackQuery,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)
from aiogram.types import Message as TgMessage
from aiohttp import ClientSession

from playground.telegram import (
    ApiError,
    Button,
    CallbackAnswer,
    Message,
    RateLimits,
    TelegramEmulator,
    parse_html,
)

TOKEN = "123456:TEST-token"


# --- a tiny bot -------------------------------------------------------------------------


def services_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Instagram", callback_data="svc:Instagram"),
                InlineKeyboardButton(text="TikTok", callback_data="svc:TikTok"),
            ],
            [InlineKeyboardButton(text="Save", callback_data="save")],
            [InlineKeyboardButton(text="Docs", url="https://example.com/docs")],
        ]
    )


def build_router() -> Router:
    router = Router()

    @router.message(CommandStart())
    async def start(message: TgMessage) -> None:
        name = message.from_user.first_name if message.from_user else "there"
        await message.answer(f"Hello <b>{html.quote(name)}</b>", reply_markup=services_keyboard())

    @router.callback_query(F.data.startswith("svc:"))
    async def pick(call: CallbackQuery) -> None:
        service = (call.data or "").removeprefix("svc:")
        assert isinstance(call.message, TgMessage)
        back = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Back", callback_data="back")]]
        )
        await call.message.edit_text(f"You picked <i>{html.quote(service)}</i>", reply_markup=back)
        await call.answer()

    @router.callback_query(F.data == "save")
    async def save(call: CallbackQuery) -> None:
        await call.answer("Saved", show_alert=True)

    @router.message(Command("ask"))
    async def ask(message: TgMessage) -> None:
        await message.answer("Which link?", reply_markup=ForceReply(selective=True))

    @router.message(F.reply_to_message)
    async def got(message: TgMessage) -> None:
        await message.reply(f"Got {html.quote(message.text or '')}")

    return router


def make_bot(emulator: TelegramEmulator, token: str = TOKEN) -> Bot:
    return Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(emulator.url)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    emu = TelegramEmulator(token=TOKEN)
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def tg_bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    bot = make_bot(emulator)
    yield bot
    await bot.session.close()


@pytest.fixture
async def polling(emulator: TelegramEmulator, tg_bot: Bot) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher()
    dispatcher.include_router(build_router())
    task = asyncio.create_task(
        dispatcher.start_polling(tg_bot, handle_signals=False, close_bot_session=False)
    )
    assert await emulator.wait_until(lambda: bool(emulator.calls("getUpdates")), 5)
    yield dispatcher
    await dispatcher.stop_polling()
    await task


# --- conversations ----------------------------------------------------------------------


async def test_start_is_answered_with_html_and_keyboard(
    emulator: TelegramEmulator, polling: Dispatcher
) -> None:
    alice = emulator.user(1001, first_name="Alice")

    reply = await alice.send("/start")

    assert reply.from_bot
    assert reply.text == "Hello Alice"
    assert reply.html == "Hello <b>Alice</b>"
    assert reply.entities == [{"type": "bold", "offset": 6, "length": 5}]
    assert reply.buttons[0] == [
        Button("Instagram", "svc:Instagram"),
        Button("TikTok", "svc:TikTok"),
    ]
    assert reply.buttons[2] == [Button("Docs", "https://example.com/docs")]
    assert [m.from_bot for m in alice.messages] == [False, True]
    assert alice.last_bot_message == reply
    assert emulator.calls("sendMessage")[0]["chat_id"] == 1001
    assert TOKEN not in repr(emulator.requests)


async def test_pressing_a_button_edits_the_message_in_place(
    emulator: TelegramEmulator, polling: Dispatcher
) -> None:
    alice = emulator.user(1001, first_name="Alice")
    menu = await alice.send("/start")

    picked = await alice.press("insta")  # contains, case-insensitive

    assert isinstance(picked, Message)
    assert picked.message_id == menu.message_id
    assert picked.edited == 1
    assert picked.text == "You picked Instagram"
    assert picked.buttons == [[Button("Back", "back")]]
    assert len(alice.bot_messages) == 1
    await emulator.settle()
    assert alice.last_callback_answer is not None
    assert emulator.unanswered_callback_queries() == []


async def test_a_press_answered_only_with_a_toast_returns_the_answer(
    emulator: TelegramEmulator, polling: Dispatcher
) -> None:
    alice = emulator.user(1001, first_name="Alice")
    menu = await alice.send("/start")

    answer = await alice.press("Save", message=menu)

    assert isinstance(answer, CallbackAnswer)
    assert (answer.text, answer.show_alert, answer.buttons) == ("Saved", True, [])
    assert alice.last_bot_message == menu  # nothing was edited


async def test_pressing_needs_one_clear_callback_button(
    emulator: TelegramEmulator, polling: Dispatcher
) -> None:
    alice = emulator.user(1001, first_name="Alice")
    await alice.send("/start")

    with pytest.raises(AssertionError, match="several buttons"):
        await alice.press("a")  # "Instagram" and "Save"
    with pytest.raises(AssertionError, match="sends no callback query"):
        await alice.press("Docs")
    with pytest.raises(AssertionError, match="no inline button"):
        await alice.press("Facebook")


async def test_a_group_member_answers_a_force_reply(
    emulator: TelegramEmulator, polling: Dispatcher
) -> None:
    bob = emulator.user(1002, first_name="Bob").in_group(-100777, title="Team")

    question = await bob.send("/ask@smm_test_bot")
    answer = await bob.reply_to(question, "https://instagram.com/p/1")

    assert question.force_reply
    assert question.chat == {"id": -100777, "type": "supergroup", "title": "Team"}
    assert answer.text == "Got https://instagram.com/p/1"
    assert answer.reply_to_message_id == bob.messages[-2].message_id


async def test_send_times_out_with_the_transcript(
    emulator: TelegramEmulator, polling: Dispatcher
) -> None:
    alice = emulator.user(1001, first_name="Alice")

    with pytest.raises(AssertionError, match=r"no bot message within 0\.3 s") as failure:
        await alice.send("just chatting", timeout=0.3)

    assert "Alice: 'just chatting'" in str(failure.value)


async def test_settle_and_pushed_notices(
    emulator: TelegramEmulator, polling: Dispatcher, tg_bot: Bot
) -> None:
    alice = emulator.user(1001, first_name="Alice")
    alice.send_nowait("nothing to answer")
    await emulator.settle(idle=0.1)
    assert not alice.bot_messages

    async def push_later() -> None:
        await asyncio.sleep(0.05)
        await tg_bot.send_message(1001, "Order 5: In progress")
        await tg_bot.send_message(1001, "Order 5: <b>Completed</b>")

    pusher = asyncio.create_task(push_later())
    notice = await alice.wait_for(lambda m: "Completed" in m.text, timeout=5)
    await pusher

    assert notice.html == "Order 5: <b>Completed</b>"


# --- the Bot API rules ------------------------------------------------------------------


async def test_get_updates_long_polls_and_offset_confirms(
    emulator: TelegramEmulator, tg_bot: Bot
) -> None:
    alice = emulator.user(1001, first_name="Alice", language_code="fil")
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(tg_bot.get_updates(timeout=5))
    await asyncio.sleep(0.3)
    assert not poll.done()

    alice.send_nowait("/start now")
    updates = await asyncio.wait_for(poll, 2)

    assert loop.time() - started >= 0.3
    [update] = updates
    assert update.message is not None
    assert update.message.text == "/start now"
    assert update.message.from_user is not None
    assert update.message.from_user.language_code == "fil"
    assert update.message.entities is not None
    assert update.message.entities[0].type == "bot_command"
    assert await tg_bot.get_updates(offset=update.update_id + 1, timeout=0) == []


async def test_editing_to_identical_content_is_not_modified(
    emulator: TelegramEmulator, tg_bot: Bot
) -> None:
    alice = emulator.user(1001, first_name="Alice")
    sent = await tg_bot.send_message(
        1001, "Status: <b>Pending</b>", reply_markup=services_keyboard()
    )
    message_id = sent.message_id

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_text(
            "Status: <strong>Pending</strong>",
            reply_markup=services_keyboard(),
            chat_id=1001,
            message_id=message_id,
        )
    # The same text without reply_markup is a change: Telegram drops the keyboard.
    await tg_bot.edit_message_text("Status: <b>Pending</b>", chat_id=1001, message_id=message_id)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await tg_bot.edit_message_reply_markup(chat_id=1001, message_id=message_id)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await tg_bot.edit_message_text("x", chat_id=1001, message_id=999)

    [message] = alice.messages
    assert (message.edited, message.buttons) == (1, [])


async def test_invalid_html_is_a_bad_request(emulator: TelegramEmulator, tg_bot: Bot) -> None:
    emulator.user(1001, first_name="Alice")

    with pytest.raises(TelegramBadRequest, match="can't parse entities: Unsupported start tag"):
        await tg_bot.send_message(1001, "Price <3 USD")

    assert emulator.errors[-1].description.startswith("Bad Request: can't parse entities")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<p>hi</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("<b>hi", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b><i>hi</b></i>", 'Unmatched end tag at byte offset 8, expected "</i>", found "</b>"'),
        ("é < 2", 'Unsupported start tag "" at byte offset 3'),
        ("AT&T", 'unescaped "&" at byte offset 2: write it as "&amp;"'),
        ("hi</b>", "Unexpected end tag at byte offset 2"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<a href="x', "Unclosed start tag at byte offset 0"),
    ],
)
def test_html_errors_read_like_telegram(source: str, error: str) -> None:
    with pytest.raises(ApiError) as failure:
        parse_html(source)

    assert failure.value.code == 400
    assert failure.value.description == f"Bad Request: can't parse entities: {error}"


def test_html_becomes_plain_text_and_utf16_entities() -> None:
    source = (
        ' &lt;b&gt; &amp; &#33;&#x41; 😀 <a href="https://x.io/?a=1&amp;b=2">link</a> '
        '<pre><code class="language-python">x = 1</code></pre> <tg-spoiler>s</tg-spoiler>\n'
    )

    text, entities = parse_html(source)

    assert text == " <b> & !A 😀 link x = 1 s\n"
    assert entities == [
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.io/?a=1&b=2"},
        {"type": "pre", "offset": 18, "length": 5, "language": "python"},
        {"type": "spoiler", "offset": 24, "length": 1},
    ]
    assert parse_html("AT&T", strict=False) == ("AT&T", [])
    # URLs stay lenient even when strict: aiogram's html.link() does not escape them.
    assert (
        parse_html('<a href="https://x.io/?a=1&b=2">x</a>')[1][0]["url"] == "https://x.io/?a=1&b=2"
    )


async def test_callback_data_must_be_1_to_64_bytes(
    emulator: TelegramEmulator, tg_bot: Bot
) -> None:
    emulator.user(1001, first_name="Alice")

    def keyboard(data: str) -> InlineKeyboardMarkup:
        button = InlineKeyboardButton(text="Go", callback_data=data)
        return InlineKeyboardMarkup(inline_keyboard=[[button]])

    await tg_bot.send_message(1001, "ok", reply_markup=keyboard("x" * 64))
    for data in ("x" * 65, "é" * 33):
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await tg_bot.send_message(1001, "too long", reply_markup=keyboard(data))


# --- fault injection --------------------------------------------------------------------


async def test_fail_next_answers_429_with_retry_after(
    emulator: TelegramEmulator, tg_bot: Bot
) -> None:
    emulator.user(1001, first_name="Alice")
    emulator.user(1002, first_name="Bob")
    emulator.fail_next("sendMessage", retry_after=7)
    emulator.fail_next("sendMessage", error_code=502, chat_id=1002)

    with pytest.raises(TelegramRetryAfter) as limited:
        await tg_bot.send_message(1001, "first")
    await tg_bot.send_message(1001, "second")
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await tg_bot.send_message(1002, "third")
    await tg_bot.send_message(1002, "fourth")

    assert limited.value.retry_after == 7
    assert [m.text for m in emulator.messages(1001)] == ["second"]
    assert emulator.stats.injected_faults == 2


async def test_a_blocked_chat_answers_403(emulator: TelegramEmulator, tg_bot: Bot) -> None:
    emulator.user(1001, first_name="Alice").in_group(-100777, title="Team")
    emulator.block(1001)
    emulator.block(-100777)

    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await tg_bot.send_message(1001, "hello")
    with pytest.raises(TelegramForbiddenError, match="kicked from the supergroup chat"):
        await tg_bot.send_message(-100777, "hello")
    emulator.unblock(1001)
    await tg_bot.send_message(1001, "hello again")


async def test_rate_limits_answer_429_when_exceeded() -> None:
    limits = RateLimits(global_per_second=3, per_chat_per_second=1, per_group_per_minute=2)
    async with TelegramEmulator(token=TOKEN, limits=limits) as emulator:
        for user_id in (1, 2, 3, 4):
            emulator.user(user_id)
        emulator.add_group(-100555, "Ops")
        async with make_bot(emulator) as bot:
            await bot.send_message(1, "one")
            with pytest.raises(TelegramRetryAfter) as per_chat:
                await bot.send_message(1, "one again")
            await bot.send_message(2, "two")
            await bot.send_message(3, "three")
            with pytest.raises(TelegramRetryAfter):
                await bot.send_message(4, "four: over 3 per second")

    assert per_chat.value.retry_after == 1
    assert (emulator.stats.sent, emulator.stats.too_many_requests) == (3, 2)


# --- the rest of the surface ------------------------------------------------------------


async def test_identity_commands_and_unknown_calls(
    emulator: TelegramEmulator, tg_bot: Bot
) -> None:
    me = await tg_bot.get_me()
    await tg_bot.set_my_commands([BotCommand(command="start", description="Start")])
    commands = await tg_bot.get_my_commands()
    await tg_bot.delete_my_commands()

    assert (me.id, me.is_bot, me.username) == (123456, True, "smm_test_bot")
    assert [c.command for c in commands] == ["start"]
    assert emulator.commands() == []
    async with make_bot(emulator, "999:WRONG") as stranger:
        with pytest.raises(TelegramUnauthorizedError):
            await stranger.get_me()
    async with (
        ClientSession() as http,
        http.post(f"{emulator.url}/bot{TOKEN}/sendPhoto", data={"chat_id": "1"}) as response,
    ):
        assert response.status == 404
        assert await response.json() == {
            "ok": False,
            "error_code": 404,
            "description": "Not Found: method not found",
        }


async def test_the_http_user_api(emulator: TelegramEmulator, polling: Dispatcher) -> None:
    async with ClientSession(base_url=emulator.url) as http:

        async def call(method: str, path: str, body: Any = None) -> dict[str, Any]:
            async with http.request(method, path, json=body) as response:
                answer: dict[str, Any] = await response.json()
                return {"status": response.status, **answer}

        await call("POST", "/user-api/users", {"id": 2001, "first_name": "Web"})
        sent = await call(
            "POST", "/user-api/send", {"user_id": 2001, "chat_id": 2001, "text": "/start"}
        )
        after_send = sent["message"]["version"]
        page = await call(
            "GET", f"/user-api/chats/2001/messages?after_version={after_send}&timeout=5"
        )
        [_, menu] = page["messages"]
        press = {
            "user_id": 2001,
            "chat_id": 2001,
            "message_id": menu["message_id"],
            "callback_data": "save",
        }
        pressed = await call("POST", "/user-api/press", press)
        toast = await call(
            "GET", f"/user-api/chats/2001/messages?after_version={page['version']}&timeout=5"
        )
        missing = await call("GET", "/user-api/chats/424242/messages")
        group = await call("POST", "/user-api/chats", {"id": -100900, "title": "Ops"})

    assert menu["html"] == "Hello <b>Web</b>"
    assert menu["buttons"][1] == [["Save", "save"]]
    assert toast["callback_answer"]["query_id"] == pressed["callback_query_id"]
    assert toast["callback_answer"]["text"] == "Saved"
    assert missing["status"] == 404
    assert group["chat"] == {"id": -100900, "type": "supergroup", "title": "Ops"}


async def test_privacy_mode_hides_plain_group_chatter() -> None:
    async with TelegramEmulator(token=TOKEN, privacy_mode=True) as emulator:
        bob = emulator.user(1002, first_name="Bob").in_group(-100777, title="Team")
        bob.send_nowait("just chatting")
        bob.send_nowait("/ask")
        async with make_bot(emulator) as bot:
            updates = await bot.get_updates(timeout=0)

    assert [u.message.text for u in updates if u.message] == ["/ask"]
