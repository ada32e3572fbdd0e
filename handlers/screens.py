"""Showing a step: edit in place when the content changed, ForceReply prompts in groups."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    CallbackQuery,
    ForceReply,
    InaccessibleMessage,
    InlineKeyboardMarkup,
    Message,
    User,
)


def member(message: Message) -> int:
    """Whom a reply to `message` serves: its sender (the chat itself for anonymous posts)."""
    return message.from_user.id if message.from_user is not None else message.chat.id


def _same(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> bool:
    current = message.html_text if message.text else ""
    return current == text and message.reply_markup == markup


async def replace(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Show `text` in the pressed message; never re-edit it to identical content."""
    message = query.message
    if message is None or isinstance(message, InaccessibleMessage):
        if query.from_user and query.bot:
            await query.bot.send_message(query.from_user.id, text, reply_markup=markup)
        return
    if _same(message, text, markup):
        return
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as error:
        if "message is not modified" not in error.message:
            raise


async def drop_buttons(query: CallbackQuery) -> None:
    """Remove the buttons of a message whose step is over (so they cannot be pressed again)."""
    message = query.message
    if isinstance(message, Message) and message.reply_markup is not None:
        try:
            await message.edit_reply_markup(reply_markup=None)
        except TelegramBadRequest as error:
            if "message is not modified" not in error.message:
                raise


async def ask(
    chat_message: Message,
    user: User | None,
    text: str,
    markup: InlineKeyboardMarkup | None,
) -> tuple[Message | None, Message | None]:
    """Ask for typed input in the chat of `chat_message`: (the group's ForceReply question, the
    message with the buttons). In a private chat the question carries the buttons itself.

    In groups the question is a ForceReply (so the answer reaches the bot under privacy mode),
    addressed to the member by name ("Alex, send the link…"), and the step's buttons go on a
    message of their own.
    """
    if chat_message.chat.type == "private":
        return None, await chat_message.answer(text, reply_markup=markup)
    force = ForceReply(selective=True)
    named = user is not None and not user.is_bot
    addressed = f"{user.mention_html()}, {text[:1].lower()}{text[1:]}" if named and user else text
    from_user = chat_message.from_user
    if from_user is not None and not from_user.is_bot:
        question = await chat_message.reply(addressed, reply_markup=force)
    else:
        question = await chat_message.answer(addressed, reply_markup=force)
    if markup is None:
        return question, None
    return question, await chat_message.answer("⬇️", reply_markup=markup)
