"""Filters shared by the routers: who may order, whose button it is, the pressed message, and
the reply-keyboard menu buttons."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from bot.access import Access
from handlers.callbacks import FLOW_BUTTONS, ORDERING_BUTTONS, flow_of, member_of
from handlers.flows import FLOW


class MayOrder(Filter):
    """Admins, allowed users, or everyone when OPEN_TO_ALL (see bot.access)."""

    async def __call__(self, event: TelegramObject, access: Access | None = None) -> bool:
        return access is not None and access.may_order


class IsAdmin(Filter):
    async def __call__(self, event: TelegramObject, access: Access | None = None) -> bool:
        return access is not None and access.is_admin


class ForSomeoneElse(Filter):
    """A press on a button that was shown to another member (see `handlers.callbacks`)."""

    async def __call__(self, query: CallbackQuery) -> bool:
        member = member_of(query.data)
        return member is not None and member != query.from_user.id


class InCurrentFlow(Filter):
    """A button of the member's current ordering conversation (not of one they have left).
    Other buttons pass: this filter speaks only of ordering menus."""

    async def __call__(self, query: CallbackQuery, state: FSMContext) -> bool:
        flow = flow_of(query.data)
        if flow is None:
            return (query.data or "").split(":", 1)[0] not in FLOW_PREFIXES
        return flow == (await state.get_data()).get(FLOW)


class OrderingButton(Filter):
    """A button of the ordering flow (menus, forms, summaries, order cards)."""

    async def __call__(self, query: CallbackQuery) -> bool:
        return (query.data or "").split(":", 1)[0] in ORDERING_BUTTONS


class PressedOn(Filter):
    """The message a pressed button is on, given to the handler as `message` (a message too
    old for Telegram to show us fails the filter; see `handlers.common`)."""

    async def __call__(self, query: CallbackQuery) -> bool | dict[str, Any]:
        if isinstance(query.message, Message):
            return {"message": query.message}
        return False


FLOW_PREFIXES = frozenset(FLOW_BUTTONS)


def menu_text(name: str) -> str:
    """The label of a reply-keyboard menu button, in the current language."""
    labels = {"order": _("🛒 New order"), "orders": _("📋 My orders"), "wallet": _("💳 Wallet")}
    return labels[name]


class MenuButton(Filter):
    """A press of the reply-keyboard button `name` (compared in the user's language)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, message: Message) -> bool:
        return message.text is not None and message.text == menu_text(self.name)
