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
from bot.admin import Reconciliation, ResellerReport, Settlement, Spend, Stats, StatsReport
from bot.billing import (
    AmountProblem,
    Billing,
    InsufficientFunds,
    InvalidAmount,
    LedgerEntry,
    Markups,
    MarkupScope,
    admin_reference,
    entry_kind_label,
    parse_amount,
    parse_percent,
)
from bot.catalog import Catalog, CatalogSnapshot, normalize_text
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
WALLET_COMMANDS = ("credit", "debit", "markup")  # and /wallet <user>
FIGURE_COMMANDS = ("balance", "stats", "unknown", "wallet", *WALLET_COMMANDS)
SHOWN_MARKUPS = 40  # per level, so the list stays one message


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
    if stats.reseller is not None:
        lines += ["", *reseller_lines(stats.reseller)]
    return "\n".join(lines)


def reseller_lines(report: ResellerReport) -> list[str]:
    money = report.currency
    lines = ["<b>" + _("Reseller mode") + "</b>"]
    periods = (
        (_("Today (UTC):"), report.today),
        (_("Last 7 days:"), report.week),
        (_("Last 30 days:"), report.month),
    )
    for title, period in periods:
        lines += [
            "",
            title,
            "• " + _("Top-ups: {amount}").format(amount=format_money(period.topups, money)),
            "• "
            + _("Added by admins (less taken): {amount}").format(
                amount=format_money(period.admin_credits, money)
            ),
            "• "
            + _("Revenue (payments less refunds): {amount}").format(
                amount=format_money(period.revenue, money)
            ),
            "• " + _("Panel cost: {amount}").format(amount=_spend(period.panel_cost, money)),
            "• " + _("Margin: {amount}").format(amount=format_money(period.margin, money)),
        ]
    lines += [
        "",
        _("All wallets together (owed to customers): {amount}").format(
            amount=f"<b>{format_money(report.owed, money)}</b>"
        ),
    ]
    return lines


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
    if len(words) != 1:
        await message.answer(
            _(
                "Usage: /{command} followed by a Telegram user id or a known @username, like "
                "/{command} 123456789"
            ).format(command=command.command)
        )
        return
    found = await people.find(words[0])
    if found is None:
        await message.answer(_unknown_person(words[0]))
        return
    allowed = command.command == "allow"
    person = await people.set_access(found.id, allowed)
    if allowed:
        text = _("{person} may now place orders.")
    else:
        text = _("{person} may no longer place orders.")
    await message.answer(text.format(person=_who(person)))


def _unknown_person(text: str) -> str:
    return _(
        "I do not know {who}: a username is known once its owner has written to me. "
        "Send their Telegram user id instead."
    ).format(who=escape(text[:40]))


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


# --- reseller mode: /credit, /debit, /wallet <user>, /markup ---------------------------------


async def needs_wallet_mode(message: Message) -> None:
    await message.answer(_("This command works in reseller mode only (BILLING=wallet)."))


def team_mode(message: Message, settings: Settings) -> bool:
    return not settings.wallet_mode


async def change_wallet(
    message: Message,
    command: CommandObject,
    people: People,
    billing: Billing,
    access: Access,
) -> None:
    """/credit <user> <amount> [note] and /debit …: one booking per command message, so a
    redelivered command books nothing and answers the same."""
    words = (command.args or "").split(maxsplit=2)
    if len(words) < 2:
        await message.answer(
            _(
                "Usage: /{command} followed by a user id or @username, an amount and an "
                "optional note, like /{command} 123456789 10.50 bank transfer"
            ).format(command=command.command)
        )
        return
    person = await people.find(words[0])
    if person is None:
        await message.answer(_unknown_person(words[0]))
        return
    try:
        amount = parse_amount(words[1])
    except InvalidAmount as error:
        await message.answer(_amount_error(error))
        return
    change = billing.credit if command.command == "credit" else billing.debit
    try:
        booking = await change(
            person.id,
            amount,
            admin_id=access.user_id,
            reference=admin_reference(message.chat.id, message.message_id),
            note=words[2] if len(words) > 2 else None,
        )
    except InsufficientFunds as refusal:
        await message.answer(
            _(
                "{person} has {balance} in their wallet: taking {amount} would take it below "
                "zero. Nothing was taken."
            ).format(
                person=_who(person),
                balance=format_money(refusal.balance, billing.currency),
                amount=format_money(amount, billing.currency),
            )
        )
        return
    if command.command == "credit":
        text = _("Added {amount} to the wallet of {person}. New balance: {balance}.")
    else:
        text = _("Took {amount} from the wallet of {person}. New balance: {balance}.")
    await message.answer(
        text.format(
            amount=format_money(amount, booking.currency),
            person=_who(person),
            balance=f"<b>{format_money(booking.balance, booking.currency)}</b>",
        )
    )


def _amount_error(error: InvalidAmount) -> str:
    if error.problem is AmountProblem.NOT_POSITIVE:
        return _("The amount must be above zero.")
    if error.problem is AmountProblem.FINER_THAN_CENT:
        return _("The amount can have at most two decimals, like 10.50.")
    if error.problem is AmountProblem.TOO_LARGE:
        return _("That amount is too large.")
    return _("That is not an amount. Send a number like 10 or 10.50.")


async def show_wallet_of(
    message: Message, command: CommandObject, people: People, billing: Billing
) -> None:
    """/wallet <user>: anyone's balance and latest entries (the admin's own: /wallet alone)."""
    words = (command.args or "").split()
    person = await people.find(words[0]) if len(words) == 1 else None
    if person is None:
        await message.answer(_unknown_person(words[0]) if len(words) == 1 else _wallet_usage())
        return
    wallet = await billing.wallet(person.id)
    lines = [
        "<b>" + _("Wallet of {person}").format(person=_who(person)) + "</b>",
        _("Balance: {amount}").format(
            amount=f"<b>{format_money(wallet.balance, wallet.currency)}</b>"
        ),
        "",
    ]
    if wallet.entries:
        lines.append(_("Latest entries:"))
        lines += [_entry_line(entry) for entry in wallet.entries]
    else:
        lines.append(_("No entries yet."))
    await message.answer("\n".join(lines))


def _wallet_usage() -> str:
    return _("Usage: /wallet followed by a user id or @username, like /wallet 123456789")


def _entry_line(entry: LedgerEntry) -> str:
    sign = "+" if entry.amount > 0 else ""
    parts = [
        entry.created_at.strftime("%Y-%m-%d %H:%M"),
        entry_kind_label(entry.kind, _),
        sign + format_money(entry.amount, entry.currency),
    ]
    if entry.order_id is not None:
        parts.append(_("order ref. {number}").format(number=entry.order_id))
    if entry.note:
        parts.append(f"“{escape(notices.clip(entry.note, 60))}”")
    return "• " + " · ".join(parts)


async def markup_command(
    message: Message,
    command: CommandObject,
    billing: Billing,
    catalog: Catalog,
    settings: Settings,
) -> None:
    """/markup shows every markup; /markup 15, /markup category <name> 10 and
    /markup service <id> 20 set one; "off" in place of the percent clears it."""
    words = (command.args or "").split()
    if not words:
        await message.answer(markups_text(await billing.markups(), settings.markup_percent))
        return
    level, value = words[0].lower(), words[-1]
    if len(words) == 1:
        scope, key, shown = MarkupScope.GLOBAL, "", _("all services (global)")
    elif level == "service" and len(words) == 3 and parse_id(words[1]) is not None:
        scope, key = MarkupScope.SERVICE, str(parse_id(words[1]))
        shown = _("service {id}").format(id=key)
    elif level == "category" and len(words) >= 3:
        scope, key = MarkupScope.CATEGORY, " ".join(words[1:-1])
        shown = _("category “{name}”").format(name=escape(notices.clip(key, 80)))
    else:
        await message.answer(_markup_usage())
        return
    if value.lower() == "off":
        await _clear_markup(message, billing, scope, key, shown)
        return
    try:
        percent = parse_percent(value)
    except InvalidAmount as error:
        await message.answer(_percent_error(error))
        return
    if scope != MarkupScope.GLOBAL:
        try:
            snapshot = await catalog.get()
        except (PanelError, PanelUnavailable):
            await message.answer(
                _("The panel is not answering right now. Please try again later.")
            )
            return
        found = _catalog_key(snapshot, scope, key)
        if found is None:
            await message.answer(_not_in_catalog(scope, key))
            return
        key = found
        if scope == MarkupScope.CATEGORY:
            shown = _("category “{name}”").format(name=escape(notices.clip(key, 80)))
    await billing.set_markup(scope, key, percent)
    await message.answer(
        _("The markup of {what} is now {percent}.").format(what=shown, percent=_percent(percent))
    )


async def _clear_markup(
    message: Message, billing: Billing, scope: MarkupScope, key: str, shown: str
) -> None:
    markups = await billing.markups()
    if scope == MarkupScope.CATEGORY:
        # The stored name, whatever case the admin typed it in.
        wanted = normalize_text(key)
        key = next((name for name in markups.categories if normalize_text(name) == wanted), key)
    if await billing.clear_markup(scope, key):
        await message.answer(_("The markup of {what} is cleared.").format(what=shown))
    else:
        await message.answer(_("No markup was set for {what}.").format(what=shown))


def _catalog_key(snapshot: CatalogSnapshot, scope: MarkupScope, key: str) -> str | None:
    """The key as prices look it up: a service id the panel offers, or a category's own
    name (typed in any case)."""
    if scope == MarkupScope.SERVICE:
        return key if snapshot.service(int(key)) is not None else None
    wanted = normalize_text(key)
    return next((c.name for c in snapshot.categories if normalize_text(c.name) == wanted), None)


def _not_in_catalog(scope: MarkupScope, key: str) -> str:
    if scope == MarkupScope.SERVICE:
        return _("The panel offers no service {id}.").format(id=key)
    return _("No category is named “{name}”. Use the name shown in /order.").format(
        name=escape(notices.clip(key, 80))
    )


def _percent_error(error: InvalidAmount) -> str:
    if error.problem is AmountProblem.NOT_POSITIVE:
        return _("A markup must be zero or more.")
    if error.problem is AmountProblem.FINER_THAN_CENT:
        return _("A markup can have at most two decimals, like 12.5.")
    if error.problem is AmountProblem.TOO_LARGE:
        return _("That markup is too large.")
    return _("That is not a percent. Send a number like 15, or off.") + "\n\n" + _markup_usage()


def _markup_usage() -> str:
    return "\n".join(
        [
            _("/markup — show every markup"),
            _("/markup 15 — the global markup, in percent"),
            _("/markup category &lt;name&gt; 10 — one category"),
            _("/markup service &lt;id&gt; 20 — one service"),
            _("Send off in place of the percent to clear one, like /markup service 12 off."),
        ]
    )


def markups_text(markups: Markups, default: Decimal) -> str:
    lines = [
        "<b>" + _("Markups") + "</b>",
        _("The most specific one applies: service, then category, then global, then default."),
        "",
        _("Default (MARKUP_PERCENT): {percent}").format(percent=_percent(default)),
    ]
    if markups.overall is None:
        lines.append(_("Global: not set (the default applies)"))
    else:
        lines.append(_("Global: {percent}").format(percent=_percent(markups.overall)))
    lines += _markup_list(
        _("Categories:"),
        [
            (escape(notices.clip(name, 60)), percent)
            for name, percent in sorted(markups.categories.items())
        ],
    )
    lines += _markup_list(
        _("Services:"),
        [(str(service), percent) for service, percent in sorted(markups.services.items())],
    )
    lines += ["", _markup_usage()]
    return "\n".join(lines)


def _markup_list(title: str, items: list[tuple[str, Decimal]]) -> list[str]:
    if not items:
        return []
    lines = ["", title]
    lines += [f"• {name}: {_percent(percent)}" for name, percent in items[:SHOWN_MARKUPS]]
    if len(items) > SHOWN_MARKUPS:
        lines.append("• " + _("and {count} more").format(count=len(items) - SHOWN_MARKUPS))
    return lines


def _percent(percent: Decimal) -> str:
    return f"{percent.normalize():f}%"


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
    router.message.register(needs_wallet_mode, Command(*WALLET_COMMANDS), team_mode)
    router.message.register(needs_wallet_mode, Command("wallet", magic=F.args), team_mode)
    router.message.register(show_balance, Command("balance"), PRIVATE)
    router.message.register(show_stats, Command("stats"), PRIVATE)
    router.message.register(list_unknown, Command("unknown"), PRIVATE)
    router.message.register(change_wallet, Command("credit", "debit"), PRIVATE)
    # Only with an argument: /wallet alone is the admin's own wallet, like any customer's.
    router.message.register(show_wallet_of, Command("wallet", magic=F.args), PRIVATE)
    router.message.register(markup_command, Command("markup"), PRIVATE)
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
