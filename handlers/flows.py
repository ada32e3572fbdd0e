"""One ordering conversation at a time, with one live menu: a tidy chat of no dead buttons.

A flow has a number that every one of its buttons carries (see `handlers.callbacks`), kept in the
FSM data; a button of a flow the member has left no longer matches and reaches the one
stale-button handler. Only the newest message of a flow keeps its keyboard: showing a new one
retires the previous (its keyboard goes; in groups the ForceReply question and the "⬇️" bubble
are deleted), and so does the end of the flow.
"""

from __future__ import annotations

import contextlib
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import Message

FLOW = "flow"  # the flow's number
MENU = "menu"  # the id of the message that carries its live keyboard
LITTER = "litter"  # group messages of the flow to delete when it moves on
FLOW_NUMBERS = 1_000_000
_KEPT = (FLOW, MENU, LITTER)


def flow_number(message_id: int) -> int:
    return message_id % FLOW_NUMBERS


class Flow:
    """The FSM data of one member's ordering conversation in one chat."""

    def __init__(self, state: FSMContext, bot: Bot, chat_id: int) -> None:
        self._state = state
        self._bot = bot
        self._chat_id = chat_id

    @classmethod
    def of(cls, state: FSMContext, message: Message) -> Flow:
        """The flow of the member who sent or pressed `message`, in its chat."""
        bot = message.bot
        if bot is None:  # every message aiogram hands a handler is mounted on its bot
            raise RuntimeError("a message without its bot")
        return cls(state, bot, message.chat.id)

    async def number(self) -> int | None:
        number = (await self._state.get_data()).get(FLOW)
        return int(number) if number is not None else None

    async def start(self, opened_by: Message, state: State | None = None) -> int:
        """A new flow (the previous one's menu retired): its number, taken from the message that
        opened it (message ids only grow in a chat, so a new flow never reuses a recent one)."""
        await self._retire(await self._state.get_data())
        number = flow_number(opened_by.message_id)
        await self._state.set_state(state)
        await self._state.set_data({FLOW: number})
        return number

    async def reset(self, state: State | None, **values: Any) -> None:
        """The same flow with a fresh form (back to browsing, or a new service picked)."""
        data = await self._state.get_data()
        await self._state.set_state(state)
        await self._state.set_data({key: data[key] for key in _KEPT if key in data} | values)

    async def shown(self, menu: Message | None, *litter: Message | None) -> None:
        """`menu` now carries the flow's keyboard (a new message, or one edited in place);
        the previous menu and litter are retired unless `menu` is that same message."""
        data = await self._state.get_data()
        if menu is not None and data.get(MENU) == menu.message_id:
            return
        await self._retire(data)
        ids = [message.message_id for message in litter if message is not None]
        await self._state.update_data(
            {MENU: menu.message_id if menu is not None else None, LITTER: ids}
        )

    async def menu_cleared(self) -> None:
        """The caller took the keyboard off the live menu itself (e.g. it became a card)."""
        await self._state.update_data({MENU: None})

    async def end(self, keep: Message | None = None) -> None:
        """The flow is over (placed, cancelled): its remaining buttons become stale and its
        group litter goes, but for `keep`, the message that will say how it ended."""
        data = await self._state.get_data()
        kept = keep.message_id if keep is not None else None
        await self._delete([number for number in data.get(LITTER) or [] if number != kept])
        await self._state.set_state(None)
        await self._state.set_data({})

    async def _retire(self, data: dict[str, Any]) -> None:
        litter = data.get(LITTER) or []
        await self._delete(litter)
        menu = data.get(MENU)
        if menu is not None and menu not in litter:
            with contextlib.suppress(TelegramBadRequest):  # gone already, or not modified
                await self._bot.edit_message_reply_markup(
                    chat_id=self._chat_id, message_id=int(menu), reply_markup=None
                )

    async def _delete(self, message_ids: list[int]) -> None:
        for message_id in message_ids:
            with contextlib.suppress(TelegramBadRequest):  # too old, or deleted by someone
                await self._bot.delete_message(chat_id=self._chat_id, message_id=message_id)
