"""Admin commands: balance, statistics, reconciliation of unknown orders, access, notices.

Only admins reach these handlers: for everyone else the router's filter fails and the update
falls through to the catch-all, so nobody else learns a figure or that the commands exist.
Figures are shown in private chats only, never in a group where other members would read them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from bot import notices
from bot.access import Access
from bot.admin import Reconciliation, Settlement, Spend, Stats, StatsReport
from bot.config import Settings
from bot.ids import parse_id
from bot.money import format_money
from bot.ordering import Order
from bot.panel.errors import PanelError, PanelUnavailable
from bot.people import Known, People
from handlers import keyboards
from handlers.callbacks import AccessDecision, MarkFailed, MarkPlaced
from handlers.filters import IsAdmin, PressedOn
from handlers.screens import replace
from handlers.states import Reconcile

PRIVATE = F.chat.type == "private"
GROUPS = F.chat.type.in_({"group", "supergroup"})
UNKNOWN_SHOWN = 10  # one message each; the rest after these are settled
SHOWN_STATUSES = 12
FIGURE_COMMANDS = ("balance", "stats", "unknown", "wallet")


# --- /balance -------------------------------------------------------------------------------


async def show_balance(message: Message, stats: Stats) -> None:
    try:
        balance = await stats.balance()
    except PanelUnavailable:
        await message.answer(_("The panel is not answering right now. Please try again later."))
        return
    except PanelError as error:
        await message.answer(_("The panel refused: {reason}").format(reason=escape(error.message)))
        return
    amount = format_money(balance.balance, balance.currency)
    await message.answer(_("Balance: {amount}").format(amount=f"<b>{amount}</b>"))


# --- /stats ---------------------------------------------------------------------------------


async def show_stats(message: Message, stats: Stats, settings: Settings) -> None:
    await message.answer(stats_text(await stats.collect(), settings.currency))


def stats_text(stats: StatsReport, currency: str) -> str:
    lines = ["<b>" + _("Statistics") + "</b>", "", _("Orders by stage:")]
    lines += [
        f"• {notices.submission_label(state, _)}: {count}"
        for state, count in sorted(stats.by_state.items())
    ]
    if not stats.by_state:
        lines.append("• " + _("no orders yet"))
    if stats.by_status:
        # A panel may invent statuses: the most common ones, so the message stays one message.
        common = sorted(stats.by_status.items(), key=lambda item: (-item[1], item[0]))
        lines += ["", _("Placed orders by panel status:")]
        lines += [
            f"• {notices.status_label(status or None, _)}: {count}"
            for status, count in common[:SHOWN_STATUSES]
        ]
        if len(common) > SHOWN_STATUSES:
            rest = sum(count for _status, count in common[SHOWN_STATUSES:])
            lines.append("• " + _("other statuses: {count}").format(count=rest))
    lines += [
        "",
        _("Spent today (UTC): {amount}").format(amount=_spend(stats.spent_today, currency)),
        _("Spent in the last 7 days: {amount}").format(amount=_spend(stats.spent_week, currency)),
        _("Spent in the last 30 days: {amount}").format(
            amount=_spend(stats.spent_month, currency)
        ),
        "",
        _("Awaiting reconciliation: {count}").format(count=stats.awaiting_reconciliation),
    ]
    if stats.awaiting_reconciliation:
        lines.append(_("Send /unknown to settle them."))
    lines.append(_("Messages waiting to be sent: {count}").format(count=stats.queued_messages))
    return "\n".join(lines)


def _spend(spend: Spend, currency: str) -> str:
    if not spend:
        return format_money(Decimal(0), currency)
    return " + ".join(format_money(amount, code) for code, amount in sorted(spend.items()))


# --- /unknown: reconciliation -----------------------------------------------------------------


async def list_unknown(message: Message, reconciliation: Reconciliation) -> None:
    found, total = await reconciliation.unknown_orders(limit=UNKNOWN_SHOWN)
    if not found:
        await message.answer(_("No orders await reconciliation."))
        return
    await message.answer(
        _(
            "{count} order(s) may or may not have reached the panel. Look each one up in the "
            "panel's order list, then mark it placed (with the panel's order id) or failed."
        ).format(count=total)
    )
    for order in found:
        markup = keyboards.reconcile(order.id)
        await message.answer(unknown_order_text(order), reply_markup=markup)
    if total > len(found):
        await message.answer(_("Settle these first; send /unknown again to see the next ones."))


def unknown_order_text(order: Order) -> str:
    lines = [
        "<b>" + _("Order ref. {number}").format(number=order.id) + "</b>",
        *notices.order_details(order, _),
        notices.price_line(order, _),
        _("Chat: {chat_id} · user: {user_id}").format(
            chat_id=f"<code>{order.chat_id}</code>", user_id=f"<code>{order.user_id}</code>"
        ),
        _("Sent to the panel: {time}").format(time=_utc(order.updated_at)),
    ]
    if order.error:
        lines.append(_("What happened: {error}").format(error=escape(order.error)))
    return "\n".join(lines)


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


async def ask_panel_order_id(
    query: CallbackQuery,
    callback_data: MarkPlaced,
    callback_answer: CallbackAnswer,
    message: Message,
    reconciliation: Reconciliation,
    state: FSMContext,
) -> None:
    order = await reconciliation.unsettled(callback_data.order)
    if order is None:
        callback_answer.text = _("This order is already settled.")
        callback_answer.show_alert = True
        return
    await state.set_state(Reconcile.panel_order_id)
    await state.update_data(order_id=order.id)
    await message.answer(
        _(
            "Send the panel's order id for order ref. {number}, as shown in the panel's order "
            "list, or /cancel."
        ).format(number=order.id)
    )


async def record_panel_order_id(
    message: Message,
    panel_order_id: int,
    state: FSMContext,
    reconciliation: Reconciliation,
    access: Access,
) -> None:
    order_id = int((await state.get_data()).get("order_id", 0))
    outcome = await reconciliation.mark_placed(order_id, panel_order_id, admin_id=access.user_id)
    if outcome is Settlement.ID_IN_USE:
        # Stay on this step: the admin may have mistyped the id.
        await message.answer(
            _(
                "Panel order {order_id} is already recorded for another order. "
                "Send the right id, or /cancel."
            ).format(order_id=panel_order_id)
        )
        return
    await state.clear()
    if outcome is Settlement.ALREADY_SETTLED:
        await message.answer(_("Order ref. {number} is already settled.").format(number=order_id))
        return
    await message.answer(
        _(
            "Order ref. {number} is now placed as panel order {order_id}. Its status will be "
            "checked and its chat has been told."
        ).format(number=order_id, order_id=panel_order_id)
    )


async def record_panel_order_id_invalid(message: Message) -> None:
    await message.answer(
        _("That is not an order id. Send the panel's order id (a positive number), or /cancel.")
    )


async def mark_failed(
    query: CallbackQuery,
    callback_data: MarkFailed,
    callback_answer: CallbackAnswer,
    reconciliation: Reconciliation,
    access: Access,
) -> None:
    outcome = await reconciliation.mark_failed(callback_data.order, admin_id=access.user_id)
    if outcome is not Settlement.DONE:
        callback_answer.text = _("This order is already settled.")
        callback_answer.show_alert = True
        return
    await replace(
        query,
        _("Order ref. {number} is marked as not placed; its chat has been told.").format(
            number=callback_data.order
        ),
    )


# --- /allow and /deny -----------------------------------------------------------------------


async def set_access(message: Message, command: CommandObject, people: People) -> None:
    words = (command.args or "").split()
    user_id = parse_id(words[0]) if len(words) == 1 else None
    if user_id is None:
        await message.answer(
            _(
                "Usage: /{command} followed by a Telegram user id, like /{command} 123456789"
            ).format(command=command.command)
        )
        return
    allowed = command.command == "allow"
    person = await people.set_access(user_id, allowed)
    if allowed:
        text = _("{person} may now place orders.")
    else:
        text = _("{person} may no longer place orders.")
    await message.answer(text.format(person=_who(person)))


def _who(person: Known) -> str:
    """ "Alex (@alex, id 123)" — or "User 123" for someone who never wrote to the bot."""
    if person.first_name is None and person.username is None:
        return _("User {user_id}").format(user_id=f"<code>{person.id}</code>")
    details = [f"@{escape(person.username)}"] if person.username else []
    details.append(_("id {user_id}").format(user_id=f"<code>{person.id}</code>"))
    name = escape(person.first_name or person.username or "")
    return f"{name} ({', '.join(details)})"


async def decide_access_request(
    query: CallbackQuery, callback_data: AccessDecision, people: People
) -> None:
    person = await people.set_access(callback_data.user, callback_data.allow)
    if callback_data.allow:
        text = _("{person} may now place orders.")
    else:
        text = _("{person} may no longer place orders.")
    await replace(query, text.format(person=_who(person)))


# --- /notify_here and /notify_off -----------------------------------------------------------


async def set_group_notices(message: Message, command: CommandObject, people: People) -> None:
    notify = command.command == "notify_here"
    await people.set_group_notices(message.chat.id, notify)
    if notify:
        await message.answer(_("This group will be told when an order is completed."))
    else:
        await message.answer(_("This group will no longer be told about orders."))


async def figures_in_private(message: Message, bot: Bot) -> None:
    """/balance, /stats, /unknown in a group: the figures are for the admin's eyes only."""
    me = await bot.me()
    button = InlineKeyboardButton(
        text=_("Open the private chat"), url=f"https://t.me/{me.username}"
    )
    await message.reply(
        _("Figures are shown in a private chat only."),
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]]),
    )


async def group_notices_elsewhere(message: Message) -> None:
    await message.answer(_("This works in groups: add me to a group and send it there."))


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(IsAdmin())
    router.callback_query.filter(IsAdmin(), PressedOn())
    router.message.register(show_balance, Command("balance"), PRIVATE)
    router.message.register(show_stats, Command("stats"), PRIVATE)
    router.message.register(list_unknown, Command("unknown"), PRIVATE)
    router.message.register(figures_in_private, Command(*FIGURE_COMMANDS), GROUPS)
    router.callback_query.register(ask_panel_order_id, MarkPlaced.filter())
    router.message.register(
        record_panel_order_id,
        Reconcile.panel_order_id,
        F.text.func(parse_id).as_("panel_order_id"),
    )
    router.message.register(record_panel_order_id_invalid, Reconcile.panel_order_id)
    router.callback_query.register(mark_failed, MarkFailed.filter())
    router.callback_query.register(decide_access_request, AccessDecision.filter())
    router.message.register(set_access, Command("allow", "deny"))
    router.message.register(set_group_notices, Command("notify_here", "notify_off"), GROUPS)
    router.message.register(group_notices_elsewhere, Command("notify_here", "notify_off"))
    return router
