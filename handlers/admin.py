"""Admin commands: balance, statistics, reconciliation of unknown orders, access, notices.

Only admins reach these handlers: for everyone else the router's filter fails and the update
falls through to the catch-all, so nobody else learns a figure or that the commands exist.
Figures are shown in private chats only, never in a group where other members would read them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot import admin
from bot.access import Access
from bot.admin import Reconciliation, Spend, Stats
from bot.config import Settings
from bot.money import format_money
from bot.panel.client import PanelClient
from bot.panel.errors import PanelError, PanelUnavailable
from handlers import texts
from handlers.callbacks import Id
from handlers.filters import IsAdmin
from handlers.screens import replace
from storage import people
from storage.models import Order, SubmissionState

router: Final[Router] = Router(name=__name__)
router.message.filter(IsAdmin())
router.callback_query.filter(IsAdmin())

PRIVATE = F.chat.type == "private"
GROUPS = F.chat.type.in_({"group", "supergroup"})
UNKNOWN_SHOWN = 10  # one message each; the rest after these are settled


class MarkPlaced(CallbackData, prefix="ukp"):
    order: Id  # local order id


class MarkFailed(CallbackData, prefix="ukf"):
    order: Id


class Reconcile(StatesGroup):
    panel_order_id = State()  # waiting for the panel's id of an "unknown" order


# --- /balance -------------------------------------------------------------------------------


@router.message(Command("balance"), PRIVATE)
async def show_balance(message: Message, panel: PanelClient, settings: Settings) -> None:
    try:
        balance = await panel.balance()
    except PanelUnavailable:
        await message.answer(_("The panel is not answering right now. Please try again later."))
        return
    except PanelError as error:
        await message.answer(_("The panel refused: {reason}").format(reason=escape(error.message)))
        return
    amount = format_money(balance.balance, balance.currency or settings.currency)
    await message.answer(_("Balance: {amount}").format(amount=f"<b>{amount}</b>"))


# --- /stats ---------------------------------------------------------------------------------


@router.message(Command("stats"), PRIVATE)
async def show_stats(message: Message, session: AsyncSession, settings: Settings) -> None:
    stats = await admin.collect_stats(session)
    await message.answer(stats_text(stats, settings.currency))


def stats_text(stats: Stats, currency: str) -> str:
    lines = ["<b>" + _("Statistics") + "</b>", "", _("Orders by stage:")]
    lines += [
        f"• {_state_label(state)}: {count}" for state, count in sorted(stats.by_state.items())
    ]
    if not stats.by_state:
        lines.append("• " + _("no orders yet"))
    if stats.by_status:
        lines += ["", _("Placed orders by panel status:")]
        lines += [
            f"• {texts.status_label(status or None)}: {count}"
            for status, count in sorted(stats.by_status.items())
        ]
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


def _state_label(state: str) -> str:
    labels: dict[str, str] = {
        SubmissionState.DRAFT: _("Drafts"),
        SubmissionState.AWAITING_APPROVAL: _("Waiting for approval"),
        SubmissionState.SUBMITTING: _("Being placed"),
        SubmissionState.PLACED: _("Placed"),
        SubmissionState.FAILED: _("Not placed"),
        SubmissionState.UNKNOWN: _("Not confirmed"),
        SubmissionState.REJECTED: _("Rejected"),
        SubmissionState.CANCELED: _("Dropped drafts"),
    }
    return labels.get(state, escape(state))


# --- /unknown: reconciliation -----------------------------------------------------------------


@router.message(Command("unknown"), PRIVATE)
async def list_unknown(message: Message, session: AsyncSession) -> None:
    found, total = await admin.unknown_orders(session, limit=UNKNOWN_SHOWN)
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
        await message.answer(unknown_order_text(order), reply_markup=reconcile_keyboard(order.id))
    if total > len(found):
        await message.answer(_("Settle these first; send /unknown again to see the next ones."))


def unknown_order_text(order: Order) -> str:
    lines = [
        "<b>" + _("Order ref. {number}").format(number=order.id) + "</b>",
        *texts.order_details(order),
        _("Price: {price}").format(price=format_money(order.price, order.currency)),
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


def reconcile_keyboard(order_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✅ Mark placed"), callback_data=MarkPlaced(order=order_id).pack()
                ),
                InlineKeyboardButton(
                    text=_("✖️ Mark failed"), callback_data=MarkFailed(order=order_id).pack()
                ),
            ]
        ]
    )


@router.callback_query(MarkPlaced.filter())
async def ask_panel_order_id(
    query: CallbackQuery, callback_data: MarkPlaced, session: AsyncSession, state: FSMContext
) -> None:
    order = await _unknown_order(session, callback_data.order)
    if order is None:
        await query.answer(_("This order is already settled."), show_alert=True)
        return
    await query.answer()
    await state.set_state(Reconcile.panel_order_id)
    await state.update_data(order_id=order.id)
    if isinstance(query.message, Message):
        await query.message.answer(
            _(
                "Send the panel's order id for order ref. {number}, as shown in the panel's order "
                "list, or /cancel."
            ).format(number=order.id)
        )


@router.message(
    Reconcile.panel_order_id, F.text.func(admin.parse_panel_order_id).as_("panel_order_id")
)
async def record_panel_order_id(
    message: Message,
    panel_order_id: int,
    state: FSMContext,
    session: AsyncSession,
    access: Access,
    settings: Settings,
    i18n: I18n,
) -> None:
    order_id = int((await state.get_data()).get("order_id", 0))
    outcome = await admin.mark_placed(
        session,
        order_id,
        panel_order_id,
        admin_id=access.user_id,
        i18n=i18n,
        default_language=settings.default_language,
    )
    # The FSM storage writes through a connection of its own; on SQLite it would wait for this
    # session's write lock until the handler returned, so commit before touching the state.
    await session.commit()
    if outcome is Reconciliation.ID_IN_USE:
        # Stay on this step: the admin may have mistyped the id.
        await message.answer(
            _(
                "Panel order {order_id} is already recorded for another order. "
                "Send the right id, or /cancel."
            ).format(order_id=panel_order_id)
        )
        return
    await state.clear()
    if outcome is Reconciliation.ALREADY_SETTLED:
        await message.answer(_("Order ref. {number} is already settled.").format(number=order_id))
        return
    await message.answer(
        _(
            "Order ref. {number} is now placed as panel order {order_id}. Its status will be "
            "checked and its chat has been told."
        ).format(number=order_id, order_id=panel_order_id)
    )


@router.message(Reconcile.panel_order_id)
async def record_panel_order_id_invalid(message: Message) -> None:
    await message.answer(
        _("That is not an order id. Send the panel's order id (a positive number), or /cancel.")
    )


@router.callback_query(MarkFailed.filter())
async def mark_failed(
    query: CallbackQuery,
    callback_data: MarkFailed,
    session: AsyncSession,
    access: Access,
    settings: Settings,
    i18n: I18n,
) -> None:
    outcome = await admin.mark_failed(
        session,
        callback_data.order,
        admin_id=access.user_id,
        i18n=i18n,
        default_language=settings.default_language,
    )
    await session.commit()  # before Telegram calls: never hold SQLite's write lock across them
    if outcome is not Reconciliation.DONE:
        await query.answer(_("This order is already settled."), show_alert=True)
        return
    await query.answer()
    await replace(
        query,
        _("Order ref. {number} is marked as not placed; its chat has been told.").format(
            number=callback_data.order
        ),
    )


async def _unknown_order(session: AsyncSession, order_id: int) -> Order | None:
    order = await session.get(Order, order_id)
    return order if order is not None and order.state == SubmissionState.UNKNOWN else None


# --- /allow and /deny -----------------------------------------------------------------------


@router.message(Command("allow", "deny"))
async def set_access(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    recent: people.RecentlySeen,
) -> None:
    user_id = _user_id(command.args)
    if user_id is None:
        await message.answer(
            _(
                "Usage: /{command} followed by a Telegram user id, like /{command} 123456789"
            ).format(command=command.command)
        )
        return
    allowed = command.command == "allow"
    await people.set_user_access(session, user_id, allowed)
    await session.commit()
    recent.forget_user(user_id)  # their next update reads the new decision
    if allowed:
        text = _("User {user_id} may now place orders.")
    else:
        text = _("User {user_id} may no longer place orders.")
    await message.answer(text.format(user_id=f"<code>{user_id}</code>"))


def _user_id(args: str | None) -> int | None:
    words = (args or "").split()
    if len(words) != 1 or not words[0].isascii() or not words[0].isdigit():
        return None
    user_id = int(words[0])
    return user_id if 0 < user_id < 2**63 else None


# --- /notify_here and /notify_off -----------------------------------------------------------


@router.message(Command("notify_here", "notify_off"), GROUPS)
async def set_group_notices(
    message: Message, command: CommandObject, session: AsyncSession
) -> None:
    notify = command.command == "notify_here"
    await people.set_chat_notify(session, message.chat.id, notify)
    await session.commit()  # before Telegram calls: never hold SQLite's write lock across them
    if notify:
        await message.answer(_("This group will be told when an order is completed."))
    else:
        await message.answer(_("This group will no longer be told about orders."))


@router.message(Command("notify_here", "notify_off"))
async def group_notices_elsewhere(message: Message) -> None:
    await message.answer(_("This works in groups: add me to a group and send it there."))
