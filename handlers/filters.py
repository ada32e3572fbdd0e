"""Filters shared by the routers: who may order, and the reply-keyboard menu buttons."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram.utils.i18n import gettext as _

from bot.access import Access
from handlers.callbacks import CategoriesPage, SearchStart, ServicePick, ServicesPage


class MayOrder(Filter):
    """Admins, allowed users, or everyone when OPEN_TO_ALL (see bot.access)."""

    async def __call__(self, event: TelegramObject, access: Access | None = None) -> bool:
        return access is not None and access.may_order


class IsAdmin(Filter):
    async def __call__(self, event: TelegramObject, access: Access | None = None) -> bool:
        return access is not None and access.is_admin


class OthersMenu(Filter):
    """A press on a catalog menu that another group member opened (see callbacks: `by`)."""

    async def __call__(self, query: CallbackQuery) -> bool:
        for kind in (CategoriesPage, ServicesPage, SearchStart, ServicePick):
            try:
                pressed = kind.unpack(query.data or "")
            except (TypeError, ValueError):
                continue
            return pressed.by not in (0, query.from_user.id)
        return False


def menu_text(name: str) -> str:
    """The label of a reply-keyboard menu button, in the current language."""
    labels = {"order": _("🛒 New order"), "orders": _("📋 My orders")}
    return labels[name]


class MenuButton(Filter):
    """A press of the reply-keyboard button `name` (compared in the user's language)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, message: Message) -> bool:
        return message.text is not None and message.text == menu_text(self.name)
