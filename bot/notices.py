"""Texts about orders, written for a given reader: `_` is the reader's translation.

The bot's own pushes (status updates, decisions, admin alerts) are rendered here when their outbox
row is written, in the recipient's language; the chat screens in `handlers/` reuse the same
sentences with the current update's language. Every msgid is the literal first argument of `_`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from bot.i18n import resolve_language
from bot.money import format_money
from bot.panel.errors import is_out_of_funds
from bot.panel.models import OrderStatus, RefillStatus, parse_order_status, parse_refill_status
from storage.models import Order, SubmissionState
from storage.outbox import Recipient
from storage.polling import OrderNotice

if TYPE_CHECKING:
    from bot.billing import Refund

Translate = Callable[[str], str]


class Translations(Protocol):
    """What we need of aiogram's I18n, without importing aiogram into the core."""

    def gettext(
        self, singular: str, plural: str | None = None, n: int = 1, locale: str | None = None
    ) -> str: ...


def translator(i18n: Translations, locale: str) -> Translate:
    def translate(text: str) -> str:
        return i18n.gettext(text, locale=locale)

    return translate


def recipient_language(recipient: Recipient, default: str) -> str:
    """The chat's language by the one rule (`bot.i18n.resolve_language`).

    Groups have no user row, so they get the chat's language or the bot's default.
    """
    chosen = recipient.user_language or recipient.chat_language
    return resolve_language(chosen, recipient.telegram_language, default)


def order_status_label(status: str, _: Translate) -> str:
    """ "Completed" in English; the translated word with the panel's word after it otherwise.

    Keeping the panel's own word lets a Filipino reader match it with the panel's website.
    """
    words: dict[str, str] = {
        OrderStatus.PENDING: _("Pending"),
        OrderStatus.IN_PROGRESS: _("In progress"),
        OrderStatus.PROCESSING: _("Processing"),
        OrderStatus.COMPLETED: _("Completed"),
        OrderStatus.PARTIAL: _("Partial"),
        OrderStatus.CANCELED: _("Canceled"),
    }
    canonical = parse_order_status(status)
    return _label(words.get(canonical), str(canonical))


def refill_status_label(status: str, _: Translate) -> str:
    words: dict[str, str] = {
        RefillStatus.PENDING: _("Pending"),
        RefillStatus.IN_PROGRESS: _("In progress"),
        RefillStatus.COMPLETED: _("Completed"),
        RefillStatus.REJECTED: _("Rejected"),
    }
    canonical = parse_refill_status(status)
    return _label(words.get(canonical), str(canonical))


def _label(word: str | None, status: str) -> str:
    if word is None or word == status:
        return html.escape(status)  # an unknown status is the panel's text: shown as is
    return f"{html.escape(word)} ({html.escape(status)})"


def order_update_text(
    _: Translate,
    *,
    panel_order_id: int,
    service_name: str,
    status: str,
    remains: int | None,
    charge: Decimal | None,
    currency: str,
    refund: Refund | None = None,
) -> str:
    """The news first ("✅ Order #23502: Completed"), then what it is about. `charge` is None
    for a customer of reseller mode (they never see the panel's charge), who reads what was
    given back instead."""
    head = _("Order #{id}: {status}").format(
        id=panel_order_id, status=order_status_label(status, _)
    )
    lines = [
        f"{status_mark(status)} <b>{head}</b>",
        _("Service: {name}").format(name=f"<b>{html.escape(service_name)}</b>"),
    ]
    if remains:
        lines.append(still_to_deliver(remains, _))
    if charge is not None:
        lines.append(charge_line(charge, currency, _))
    if refund is not None:
        lines.append(refund_line(refund, _))
    return "\n".join(lines)


def refund_line(refund: Refund, _: Translate) -> str:
    return _("💳 {amount} is back in your wallet. Balance: {balance}").format(
        amount=format_money(refund.amount, refund.currency),
        balance=format_money(refund.balance, refund.currency),
    )


def short_balance_text(price: Decimal, balance: Decimal, currency: str, _: Translate) -> str:
    return _(
        "Your balance is {balance}, and this order costs {price}: nothing was ordered. "
        "Top up your wallet, then press Confirm again."
    ).format(balance=format_money(balance, currency), price=format_money(price, currency))


def not_offered_text(_: Translate) -> str:
    return _(
        "This order cannot be paid from a wallet (a subscription needs a number of posts). "
        "Nothing was charged."
    )


def unused_posts_line(_: Translate) -> str:
    return _("You pay the most it can cost: unused posts are not refunded.")


def wallet_refusal(message: str | None, _: Translate) -> str:
    """A refused order in reseller mode: never the panel's own money troubles."""
    if is_out_of_funds(message):
        return _(
            "This service is temporarily unavailable; your money is back in your wallet. "
            "The admins have been told."
        )
    return panel_refusal(message, _) + "\n" + _("Your money is back in your wallet.")


def late_charge_text(order: Order, balance: Decimal, _: Translate) -> str:
    currency = order.customer_currency or ""
    return _(
        "Order ref. {number} was placed on the panel after all, so its price of {price} "
        "was charged again. Balance: {balance}"
    ).format(
        number=order.id,
        price=format_money(order.customer_price or Decimal(0), currency),
        balance=format_money(balance, currency),
    )


def status_mark(status: str) -> str:
    """The emoji that says at a glance how an order stands."""
    marks: dict[str, str] = {
        OrderStatus.COMPLETED: "✅",
        OrderStatus.PARTIAL: "🟡",
        OrderStatus.CANCELED: "🛑",
        OrderStatus.IN_PROGRESS: "⏳",
        OrderStatus.PROCESSING: "⏳",
        OrderStatus.PENDING: "🕒",
    }
    return marks.get(parse_order_status(status), "ℹ️")


def still_to_deliver(remains: int, _: Translate) -> str:
    return _("{count} still to deliver").format(count=count(remains))


def charge_line(charge: Decimal, currency: str, _: Translate) -> str:
    """What the panel took from the account for an order (it may be less than the price)."""
    return _("Charged by the panel: {amount}").format(amount=format_money(charge, currency))


def refill_update_text(
    _: Translate,
    *,
    panel_refill_id: int,
    panel_order_id: int | None,
    service_name: str,
    status: str,
) -> str:
    lines = [
        "<b>" + _("Refill status") + "</b>",
        _("Refill: {refill_id}").format(refill_id=f"<code>{panel_refill_id}</code>"),
    ]
    if panel_order_id is not None:
        lines.append(_("Order: {order_id}").format(order_id=f"<code>{panel_order_id}</code>"))
    lines += [
        _("Service: {name}").format(name=f"<b>{html.escape(service_name)}</b>"),
        _("Status: {status}").format(status="<b>" + refill_status_label(status, _) + "</b>"),
    ]
    return "\n".join(lines)


def low_balance_text(_: Translate, *, balance: Decimal, threshold: Decimal, currency: str) -> str:
    return "\n".join(
        [
            "<b>" + _("Low panel balance") + "</b>",
            _("Balance: {amount}").format(amount=format_money(balance, currency)),
            _("Alert threshold: {amount}").format(amount=format_money(threshold, currency)),
            _("Top up the panel account so that orders keep going through."),
        ]
    )


def order_confirmed_text(_: Translate, *, order_id: int, panel_order_id: int) -> str:
    return _(
        "Order ref. {number} is confirmed: the panel has it as order {order_id}. "
        "Status updates will follow here."
    ).format(number=order_id, order_id=f"<code>{panel_order_id}</code>")


def order_not_placed_text(_: Translate, *, order_id: int) -> str:
    return _(
        "Order ref. {number} did not reach the panel, so it was not placed. "
        "You can order again with /order."
    ).format(number=order_id)


# --- what an order is and where it stands -------------------------------------------------------

# Long answers are shown shortened, so a message stays within Telegram's 4096 characters whatever
# was typed (the order itself keeps them whole).
SHOWN_ITEM = 100
SHOWN_LINK = 300
SHOWN_LIST_ITEMS = 10
SHOWN_NAME_IN_LIST = 80  # a list line or a button names a service in at most this much


def count(number: int) -> str:
    """A quantity or a bound, grouped for reading: 10,000 (English and Filipino write it so).
    Ids stay plain digits and money keeps `format_money`."""
    return f"{number:,}"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_label(status: str | None, _: Translate) -> str:
    """The panel's order status in the reader's language; "—" before the first answer."""
    return "—" if status is None else order_status_label(status, _)


def submission_label(state: str, _: Translate) -> str:
    """The one set of words for an order's stage (cards, lists, statistics)."""
    labels: dict[str, str] = {
        SubmissionState.DRAFT: _("Draft"),
        SubmissionState.AWAITING_APPROVAL: _("Waiting for approval"),
        SubmissionState.SUBMITTING: _("Being placed"),
        SubmissionState.PLACED: _("Placed"),
        SubmissionState.FAILED: _("Not placed"),
        SubmissionState.UNKNOWN: _("Not confirmed"),
        SubmissionState.REJECTED: _("Rejected"),
        SubmissionState.CANCELED: _("Cancelled before ordering"),
    }
    return labels.get(state, html.escape(state))


def state_label(order: Order, _: Translate) -> str:
    """What a customer reads about an order: the panel's status once placed, else its stage."""
    if order.state == SubmissionState.PLACED:
        return status_label(order.status, _)
    return submission_label(order.state, _)


def order_ident(order: Order, _: Translate) -> str:
    """How a customer names an order: the panel's id, or our reference before it has one."""
    if order.panel_order_id is not None:
        return f"#{order.panel_order_id}"
    return _("ref. {number}").format(number=order.id)


def _answer_lines(order: Order, _: Translate) -> list[str]:
    lines: list[str] = []
    fields: Mapping[str, Any] = order.fields or {}
    labels = {
        "comments": _("Comments"),
        "usernames": _("Usernames"),
        "hashtags": _("Hashtags"),
        "keywords": _("Keywords"),
        "groups": _("Groups"),
        "hashtag": _("Hashtag"),
        "username": _("Username"),
        "media": _("Media"),
        "answer_number": _("Answer number"),
        "min": _("Minimum"),
        "max": _("Maximum"),
        "posts": _("New posts"),
        "old_posts": _("Old posts"),
        "delay": _("Delay (minutes)"),
        "expiry": _("Expiry"),
    }
    for name, label in labels.items():
        value = fields.get(name)
        if value is None:
            continue
        text = str(value)
        if "\n" not in text:
            lines.append(f"{label}: {html.escape(clip(text, SHOWN_LINK))}")
            continue
        items = text.split("\n")
        shown = "\n".join(
            f"  • {html.escape(clip(item, SHOWN_ITEM))}" for item in items[:SHOWN_LIST_ITEMS]
        )
        if len(items) > SHOWN_LIST_ITEMS:
            more = _("  … and {count} more").format(count=len(items) - SHOWN_LIST_ITEMS)
            shown += f"\n{more}"
        lines.append(f"{label}:\n{shown}")
    return lines


def order_details(order: Order, _: Translate) -> list[str]:
    """The service and every answer of an order, one line each (lists shortened)."""
    lines = [_("Service: {name}").format(name=f"<b>{html.escape(order.service_name)}</b>")]
    if order.link:
        # The whole link: it is what the customer pays for (the form bounds its length).
        lines.append(_("Link: {link}").format(link=html.escape(order.link)))
    if order.quantity is not None and order.runs:
        lines.append(
            _("Quantity: {quantity} per run × {runs} runs = {total} in total").format(
                quantity=count(order.quantity),
                runs=count(order.runs),
                total=count(order.quantity * order.runs),
            )
        )
        lines.append(_("Every {interval} minutes").format(interval=order.interval))
    elif order.quantity is not None:
        lines.append(_("Quantity: {quantity}").format(quantity=count(order.quantity)))
    return lines + _answer_lines(order, _)


def order_heading(order: Order, _: Translate) -> str:
    """ "Order #23501" once the panel has it, "Order ref. 8" before (never "not confirmed" for
    an order its customer did confirm: the state line says where it stands)."""
    if order.panel_order_id is not None:
        return _("Order #{id}").format(id=order.panel_order_id)
    return _("Order ref. {number}").format(number=order.id)


def shown_price(order: Order) -> tuple[Decimal, str]:
    """The price its customer reads: the customer's in reseller mode, the panel's otherwise."""
    if order.customer_currency is not None and order.customer_price is not None:
        return order.customer_price, order.customer_currency
    return order.price, order.currency


def price_line(order: Order, _: Translate) -> str:
    return _("Price: {price}").format(price=format_money(*shown_price(order)))


# --- how a placement ended ----------------------------------------------------------------------


def placed_text(order: Order, _: Translate, *, balance: Decimal | None = None) -> str:
    """The order as placed; in reseller mode (`balance`) what the wallet holds after paying."""
    lines = [
        _("✅ Order placed! Order ID: <b>{id}</b>").format(id=order.panel_order_id),
        *order_details(order, _),
        price_line(order, _),
    ]
    if balance is not None and order.customer_currency is not None:
        lines.append(
            _("💳 Paid from your wallet. Balance: {balance}").format(
                balance=format_money(balance, order.customer_currency)
            )
        )
    lines += ["", _("I will tell you when its status changes. /orders shows all your orders.")]
    return "\n".join(lines)


def unknown_outcome_text(_: Translate) -> str:
    return _(
        "⚠️ The panel did not confirm this order. It may or may not have been placed — "
        "<b>do not order it again</b>; the admins will check and tell you."
    )


def panel_refusal(message: str | None, _: Translate) -> str:
    """A panel error in plain words: a sentence for known ones, the panel's words otherwise."""
    if is_out_of_funds(message):
        return _(
            "The order was not placed: the panel account does not have enough funds. "
            "The admins have been told."
        )
    if message and "incorrect link" in message.casefold():
        return _("The panel did not accept the link. Check it and order again.")
    return _("The panel refused the order: “{message}”").format(
        message=html.escape(message or _("no reason given"))
    )


def rejected_text(order: Order, _: Translate) -> str:
    return _("An admin did not approve your order of {service}. Nothing was charged.").format(
        service=html.escape(order.service_name)
    )


def rejected_refunded_text(order: Order, refund: Refund, _: Translate) -> str:
    """Reseller mode: the rejected order's money is back in the wallet."""
    head = _("An admin did not approve your order of {service}.").format(
        service=html.escape(order.service_name)
    )
    return head + "\n" + refund_line(refund, _)


# --- to the admins ------------------------------------------------------------------------------


def person_mention(user_id: int, name: str | None) -> str:
    """A tappable name (Telegram opens the profile), escaped; the id when no name is known."""
    shown = html.escape(name) if name else str(user_id)
    return f'<a href="tg://user?id={user_id}">{shown}</a>'


def approval_request_text(order: Order, requester: str, _: Translate) -> str:
    """`requester` is already HTML (see `person_mention`)."""
    lines = [
        _("🧾 An order waits for your approval (over a spending limit)."),
        _("From: {user} (id {id})").format(user=requester, id=order.user_id),
        *order_details(order, _),
        price_line(order, _),
    ]
    return "\n".join(lines)


def unknown_outcome_alert(order: Order, _: Translate) -> str:
    return _(
        "⚠️ Order ref. {ref} ({service}) may or may not have been placed: the "
        "panel did not answer. Check the panel and settle it with /unknown."
    ).format(ref=order.id, service=html.escape(order.service_name))


def out_of_funds_alert(order: Order, requester: str, _: Translate) -> str:
    """`requester` is already HTML (see `person_mention`)."""
    return "\n".join(
        [
            _(
                "💸 An order of {price} was refused: not enough funds on the panel. "
                "Top up the balance."
            ).format(price=format_money(order.price, order.currency)),
            _("From: {user} (id {id})").format(user=requester, id=order.user_id),
            *order_details(order, _),
        ]
    )


def service_changed_text(order: Order, _: Translate) -> str:
    return _(
        "The service of your order ({service}) changed on the panel while the order waited "
        "for approval (its price, type or name), so nothing was ordered. Send /order to see "
        "it as it is now."
    ).format(service=html.escape(order.service_name))


def invalid_remains_alert(
    order_id: int, panel_order_id: int, remains: int | None, _: Translate
) -> str:
    return _(
        "⚠️ Order #{id} (ref. {ref}) ended Partial with remains {remains}, outside what it "
        "ordered: no refund was booked. Check the panel and settle it with /credit."
    ).format(id=panel_order_id, ref=order_id, remains=html.escape(str(remains)))


def late_placement_alert(order: Order, _: Translate) -> str:
    return _(
        "⚠️ Order ref. {ref} ({service}) was placed on the panel after all, as order {id}, "
        "after it had been given up on. Its status is followed from now on, and its chat has "
        "been told."
    ).format(ref=order.id, service=html.escape(order.service_name), id=order.panel_order_id)


def who_ordered(facts: OrderNotice, _: Translate) -> str:
    """A group's notice: who ordered how much for which link."""
    lines = []
    if facts.orderer:
        lines.append(_("Ordered by {name}").format(name=html.escape(facts.orderer)))
    if facts.quantity is not None:
        lines.append(_("Quantity: {quantity}").format(quantity=count(facts.quantity)))
    if facts.link:
        lines.append(_("Link: {link}").format(link=html.escape(clip(facts.link, SHOWN_LINK))))
    return "\n".join(lines)


def access_request_text(who: str, user_id: int, username: str | None, _: Translate) -> str:
    """`who` is already HTML (see `person_mention`)."""
    handle = f" (@{html.escape(username)})" if username else ""
    return _("🙋 {user}{handle} asks to be allowed to order (Telegram id {id}).").format(
        user=who, handle=handle, id=user_id
    )


def access_granted_text(_: Translate) -> str:
    return _("✅ You may now place orders. Send /order to start.")
