"""Texts the bot pushes on its own (status updates, admin alerts), in the recipient's language.

They are rendered when the outbox row is written, so a message says what was true at that moment
in the language the chat had then. Every msgid is the literal first argument of a call to `_`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from bot.i18n import language_of
from bot.money import format_money
from bot.panel.models import OrderStatus, RefillStatus, parse_order_status, parse_refill_status
from storage.outbox import Recipient

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
    """A person's own choice, then the chat's, then their Telegram client's; else the default.

    Groups have no user row, so they get the chat's language or the bot's default.
    """
    chosen = recipient.user_language or recipient.chat_language
    if chosen:
        return chosen
    return language_of(recipient.telegram_language, default)


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
) -> str:
    lines = [
        "<b>" + _("Order status") + "</b>",
        _("Order: {order_id}").format(order_id=f"<code>{panel_order_id}</code>"),
        _("Service: {name}").format(name=f"<b>{html.escape(service_name)}</b>"),
        _("Status: {status}").format(status="<b>" + order_status_label(status, _) + "</b>"),
    ]
    if remains is not None:
        lines.append(_("Remains: {remains}").format(remains=remains))
    if charge is not None:
        lines.append(_("Charge: {charge}").format(charge=format_money(charge, currency)))
    return "\n".join(lines)


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
