"""A chat's orders: the list, one order's card, refresh, refill and cancel.

Every action looks the order up through the chat that asks, so an order of another chat is
answered exactly like a missing one — admins included.
"""

from __future__ import annotations

from html import escape
from typing import Final

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from bot.ordering import OrderActionError, Ordering
from handlers import keyboards, texts
from handlers.callbacks import OrderAction, OrdersPage
from handlers.filters import MayOrder, MenuButton
from handlers.screens import replace
from handlers.texts import order_ident
from storage.models import Order

router: Final[Router] = Router(name=__name__)
router.message.filter(MayOrder())
router.callback_query.filter(MayOrder())

MAX_ORDER_ID = 2**62


async def _list_screen(
    ordering: Ordering, settings: Settings, chat_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    size = settings.page_size
    found, total = await ordering.list_orders(chat_id, page=page, size=size)
    if total == 0:
        return _("You have no orders yet. Send /order to place one."), None
    pages = (total + size - 1) // size
    page = min(max(page, 0), pages - 1)
    if not found:  # the page moved past the end (orders changed); show the last one
        found, total = await ordering.list_orders(chat_id, page=page, size=size)
    text = _("Your orders ({total}), newest first:").format(total=total)
    if pages > 1:
        text += " " + _("(page {page} of {pages})").format(page=page + 1, pages=pages)
    lines = [text, ""]
    for order in found:
        ident = order_ident(order)
        lines.append(f"<b>{ident}</b> · {escape(order.service_name)} · {texts.state_label(order)}")
    return "\n".join(lines), keyboards.order_list(found, page, pages)


@router.message(Command("orders"))
@router.message(MenuButton("orders"))
async def list_orders(message: Message, ordering: Ordering, settings: Settings) -> None:
    text, markup = await _list_screen(ordering, settings, message.chat.id, 0)
    await message.answer(text, reply_markup=markup)


@router.callback_query(OrdersPage.filter())
async def orders_page(
    query: CallbackQuery, callback_data: OrdersPage, ordering: Ordering, settings: Settings
) -> None:
    await query.answer()
    assert query.message is not None
    text, markup = await _list_screen(
        ordering, settings, query.message.chat.id, callback_data.page
    )
    await replace(query, text, markup)


def _parse_id(command: CommandObject) -> int | None:
    raw = (command.args or "").strip().lstrip("#")
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_ORDER_ID:
        return None
    return int(raw)


def _not_found(order_id: int) -> str:
    return _("There is no order #{id} in this chat.").format(id=order_id)


async def _card(
    ordering: Ordering, chat_id: int, order: Order
) -> tuple[str, InlineKeyboardMarkup]:
    refills = await ordering.refills_of(chat_id, order.id)
    return texts.order_card(order, refills), keyboards.order_card(order)


@router.message(Command("status"))
async def status_command(message: Message, command: CommandObject, ordering: Ordering) -> None:
    order_id = _parse_id(command)
    if order_id is None:
        await message.answer(_("Send the order ID after the command, like: /status 23501"))
        return
    order = await ordering.find_by_panel_id(message.chat.id, order_id)
    if order is None:
        await message.answer(_not_found(order_id))
        return
    order = await ordering.refresh(message.chat.id, order.id) or order
    text, markup = await _card(ordering, message.chat.id, order)
    await message.answer(text, reply_markup=markup)


@router.message(Command("refill"))
async def refill_command(message: Message, command: CommandObject, ordering: Ordering) -> None:
    order_id = _parse_id(command)
    if order_id is None:
        await message.answer(_("Send the order ID after the command, like: /refill 23501"))
        return
    order = await ordering.find_by_panel_id(message.chat.id, order_id)
    if order is None:
        await message.answer(_not_found(order_id))
        return
    await message.answer(await _request_refill(ordering, message.chat.id, order))


async def _request_refill(ordering: Ordering, chat_id: int, order: Order) -> str:
    try:
        refill = await ordering.request_refill(chat_id, order.id)
    except OrderActionError as error:
        return _action_error(error)
    return _(
        "♻️ Refill requested: refill #{refill} for order #{order}. I will tell you when it is done."
    ).format(refill=refill.panel_refill_id, order=order.panel_order_id)


def _action_error(error: OrderActionError) -> str:
    messages = {
        "not_found": _("This order is not available."),
        "refill_not_supported": _("This service does not offer refills."),
        "refill_not_yet": _("A refill can be requested once the order is completed."),
        "cancel_not_supported": _("This service cannot be cancelled."),
        "already_finished": _("This order is already finished."),
        "panel_unavailable": _("The panel is not answering right now. Please try again later."),
    }
    if error.code == "panel_refused":
        return _("The panel said no: “{message}”").format(
            message=escape(error.panel_message or _("no reason given"))
        )
    return messages.get(error.code, _("That did not work. Please try again later."))


@router.callback_query(OrderAction.filter())
async def order_action(
    query: CallbackQuery, callback_data: OrderAction, ordering: Ordering
) -> None:
    """Show, refresh, refill or cancel an order from its card."""
    assert query.message is not None
    chat_id = query.message.chat.id
    # Callback data is never trusted: the lookup goes through the chat that pressed.
    order = await ordering.find(chat_id, callback_data.order)
    if order is None:
        await query.answer(_("This order is not available."), show_alert=True)
        return
    await query.answer(_("Updated.") if callback_data.action == "refresh" else None)
    notice = ""
    if callback_data.action == "refill":
        notice = await _request_refill(ordering, chat_id, order)
    elif callback_data.action == "cancel":
        notice = await _cancel(ordering, chat_id, order)
    else:
        order = await ordering.refresh(chat_id, order.id) or order
    text, markup = await _card(ordering, chat_id, order)
    await replace(query, f"{text}\n\n{notice}" if notice else text, markup)


async def _cancel(ordering: Ordering, chat_id: int, order: Order) -> str:
    try:
        await ordering.cancel_order(chat_id, order.id)
    except OrderActionError as error:
        return _action_error(error)
    return _("🛑 Cancellation requested. I will tell you when the panel confirms it.")
