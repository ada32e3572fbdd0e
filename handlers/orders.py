"""A chat's orders: the list, one order's card, refresh, refill and cancel.

Every action looks the order up through the chat that asks, so an order of another chat is
answered exactly like a missing one — admins included. Refill and cancel are for the order's own
user, or an admin (`Ordering` checks).
"""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from bot import notices
from bot.access import Access
from bot.config import Settings
from bot.ids import parse_id
from bot.ordering import Order, OrderActionError, Ordering, may_act_on
from handlers import keyboards, texts
from handlers.callbacks import OrderAction, OrdersPage, OrderStep
from handlers.filters import MayOrder, MenuButton, PressedOn
from handlers.screens import member, replace

# The buttons that call the panel are answered at once, so no spinner runs through the call.
REFRESHING = {"callback_answer": {"pre": True, "text": __("Checking with the panel…")}}
CALLS_THE_PANEL = {"callback_answer": {"pre": True}}


async def _list_screen(
    ordering: Ordering, settings: Settings, chat_id: int, page: int, by: int
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
        ident = notices.order_ident(order, _)
        label = notices.state_label(order, _)
        name = notices.clip(order.service_name, notices.SHOWN_NAME_IN_LIST)
        lines.append(f"<b>{ident}</b> · {escape(name)} · {label}")
    return "\n".join(lines), keyboards.order_list(found, page, pages, by)


async def list_orders(message: Message, ordering: Ordering, settings: Settings) -> None:
    text, markup = await _list_screen(ordering, settings, message.chat.id, 0, member(message))
    await message.answer(text, reply_markup=markup)


async def orders_page(
    query: CallbackQuery,
    callback_data: OrdersPage,
    message: Message,
    ordering: Ordering,
    settings: Settings,
) -> None:
    text, markup = await _list_screen(
        ordering, settings, message.chat.id, callback_data.page, callback_data.by
    )
    await replace(query, text, markup)


def _not_found(order_id: int) -> str:
    return _("There is no order #{id} in this chat.").format(id=order_id)


async def _card(
    ordering: Ordering, chat_id: int, order: Order, by: int
) -> tuple[str, InlineKeyboardMarkup]:
    refills = await ordering.refills_of(chat_id, order.id)
    return texts.order_card(order, refills), keyboards.order_card(order, by)


async def _typed_order(
    message: Message, command: CommandObject, ordering: Ordering
) -> Order | None:
    """The order named by `/status 23501` or `/refill #23501` in this chat; answers if none."""
    panel_order_id = parse_id(command.args)
    if panel_order_id is None:
        example = f"/{command.command} 23501"
        await message.answer(
            _("Send the order ID after the command, like: {example}").format(example=example)
        )
        return None
    order = await ordering.find_by_panel_id(message.chat.id, panel_order_id)
    if order is None:
        await message.answer(_not_found(panel_order_id))
    return order


async def status_command(message: Message, command: CommandObject, ordering: Ordering) -> None:
    order = await _typed_order(message, command, ordering)
    if order is None:
        return
    order = await ordering.refresh(message.chat.id, order.id) or order
    text, markup = await _card(ordering, message.chat.id, order, member(message))
    await message.answer(text, reply_markup=markup)


async def refill_command(
    message: Message, command: CommandObject, ordering: Ordering, access: Access
) -> None:
    order = await _typed_order(message, command, ordering)
    if order is None:
        return
    await message.answer(await _request_refill(ordering, message.chat.id, order, access))


async def _request_refill(ordering: Ordering, chat_id: int, order: Order, access: Access) -> str:
    try:
        refill = await ordering.request_refill(chat_id, order.id, access)
    except OrderActionError as error:
        return _action_error(error)
    return _(
        "♻️ Refill requested: refill #{refill} for order #{order}. I will tell you when it is done."
    ).format(refill=refill.panel_refill_id, order=order.panel_order_id)


def _action_error(error: OrderActionError) -> str:
    messages = {
        "not_found": _("This order is not available."),
        "not_yours": _("Only the person who placed this order, or an admin, can do that."),
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


async def show_order(
    query: CallbackQuery,
    callback_data: OrderAction,
    callback_answer: CallbackAnswer,
    message: Message,
    ordering: Ordering,
) -> None:
    # Callback data is never trusted: the lookup goes through the chat that pressed.
    order = await ordering.find(message.chat.id, callback_data.order)
    if order is None:
        callback_answer.text = _("This order is not available.")
        callback_answer.show_alert = True
        return
    text, markup = await _card(ordering, message.chat.id, order, callback_data.by)
    await replace(query, text, markup)


async def ask_to_cancel(
    query: CallbackQuery,
    callback_data: OrderAction,
    callback_answer: CallbackAnswer,
    message: Message,
    ordering: Ordering,
    access: Access,
) -> None:
    """One tap must not cancel an order: ask first, with the card kept for context."""
    order = await ordering.find(message.chat.id, callback_data.order)
    if order is None or not may_act_on(order, access):
        refusal = _action_error(OrderActionError("not_yours" if order else "not_found"))
        callback_answer.text = refusal
        callback_answer.show_alert = True
        return
    refills = await ordering.refills_of(message.chat.id, order.id)
    question = _("Cancel order {ident}?").format(ident=notices.order_ident(order, _))
    text = f"{texts.order_card(order, refills)}\n\n<b>{question}</b>"
    await replace(query, text, keyboards.cancel_question(order, callback_data.by))


async def act_on_order(
    query: CallbackQuery,
    callback_data: OrderAction,
    message: Message,
    ordering: Ordering,
    access: Access,
) -> None:
    """Refresh, refill or cancel an order from its card (the press is answered already)."""
    chat_id = message.chat.id
    order = await ordering.find(chat_id, callback_data.order)
    if order is None:
        await replace(query, _("This order is not available."))
        return
    notice = ""
    if callback_data.action == OrderStep.REFILL:
        notice = await _request_refill(ordering, chat_id, order, access)
    elif callback_data.action == OrderStep.CANCEL_YES:
        order, notice = await _cancel(ordering, chat_id, order, access)
    else:
        order = await ordering.refresh(chat_id, order.id) or order
    text, markup = await _card(ordering, chat_id, order, callback_data.by)
    await replace(query, f"{text}\n\n{notice}" if notice else text, markup)


async def _cancel(
    ordering: Ordering, chat_id: int, order: Order, access: Access
) -> tuple[Order, str]:
    try:
        cancelled = await ordering.cancel_order(chat_id, order.id, access)
    except OrderActionError as error:
        return order, _action_error(error)
    return cancelled, _("🛑 Cancellation requested. I will tell you when the panel confirms it.")


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(MayOrder())
    router.callback_query.filter(MayOrder(), PressedOn())
    router.message.register(list_orders, Command("orders"))
    router.message.register(list_orders, MenuButton("orders"))
    router.callback_query.register(orders_page, OrdersPage.filter())
    router.message.register(status_command, Command("status"))
    router.message.register(refill_command, Command("refill"))
    router.callback_query.register(show_order, OrderAction.filter(F.action == OrderStep.SHOW))
    router.callback_query.register(ask_to_cancel, OrderAction.filter(F.action == OrderStep.CANCEL))
    router.callback_query.register(
        act_on_order, OrderAction.filter(F.action == OrderStep.REFRESH), flags=REFRESHING
    )
    router.callback_query.register(act_on_order, OrderAction.filter(), flags=CALLS_THE_PANEL)
    return router
