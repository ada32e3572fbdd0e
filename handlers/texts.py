"""Every sentence the ordering conversation shows, localized, with user text HTML-escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from aiogram.utils.i18n import gettext as _

from bot import notices
from bot.forms import FormError, bounds_for, price_basis
from bot.money import format_money
from bot.notices import refill_status_label
from bot.ordering import Order, PriceList, Refill, SubmissionState
from bot.panel.errors import is_out_of_funds
from bot.panel.models import Service
from bot.services import ServiceType, is_package, service_type

SHOWN_REFILLS = 10  # a card lists the latest refills only, so it stays one message


def service_line(service: Service, prices: PriceList, width: int = 60) -> str:
    """A service button: name, price per 1000 (or per package) and min–max; the name gives way
    so the price and the range are always read whole."""
    # A button's plain text: no HTML escaping.
    price = format_money(prices.rate(service), prices.currency, markup=False)
    if is_package(service):
        terms = price
    else:
        terms = _("{price}/1000 · {min}–{max}").format(
            price=price, min=notices.count(service.min), max=notices.count(service.max)
        )
    name = notices.clip(service.name, max(width - len(terms) - 3, 12))
    return f"{name} · {terms}"


def service_card(service: Service, prices: PriceList) -> str:
    rate, currency = prices.rate(service), prices.currency
    lines = [
        f"<b>{escape(service.name)}</b>",
        _("Service ID: {id}").format(id=service.id),
        _("Category: {category}").format(category=escape(service.category)),
    ]
    if service_type(service) != ServiceType.DEFAULT:  # "Default" tells a customer nothing
        lines.append(_("Type: {type}").format(type=escape(service.type)))
    if is_package(service):
        lines.append(_("Price: {price}").format(price=format_money(rate, currency)))
    else:
        lines.append(_("Price: {price} per 1000").format(price=format_money(rate, currency)))
        lines.append(
            _("Quantity: {min} to {max}").format(
                min=notices.count(service.min), max=notices.count(service.max)
            )
        )
    lines.append(_("Refill: {answer}").format(answer=_("yes") if service.refill else _("no")))
    lines.append(_("Cancel: {answer}").format(answer=_("yes") if service.cancel else _("no")))
    if service.dripfeed:
        lines.append(_("Drip-feed available"))
    if service.desc:
        lines += ["", escape(service.desc[:700])]
    return "\n".join(lines)


def prompt(field: str, service: Service) -> str:
    """The question of one form step (English contains "link", "quantity", "comment")."""
    low, high = bounds_for(field, service) or (0, 0)
    prompts: Mapping[str, str] = {
        "link": _("Send the link (post, page or profile link)."),
        "quantity": _("Send the quantity: a whole number from {min} to {max}.")
        if not service.dripfeed
        else _(
            "Send the quantity (per run, if you spread the order with drip-feed next): a "
            "whole number from {min} to {max}."
        ),
        "dripfeed": _(
            "Spread the order over time (drip-feed)? Press “Yes” to choose runs and an "
            "interval, or “Skip” to send it all at once."
        ),
        "runs": _("How many runs? A whole number from {min} to {max}."),
        "interval": _("Interval in minutes between runs: from {min} to {max}."),
        "comments": _("Send the comments, one comment per line ({min} to {max} lines)."),
        "usernames": _("Send the usernames, one per line ({min} to {max} lines)."),
        "hashtags": _("Send the hashtags, one per line ({min} to {max} lines)."),
        "keywords": _("Send the keywords, one per line ({min} to {max} lines)."),
        "groups": _("Send the groups, one per line ({min} to {max} lines)."),
        "hashtag": _("Send the hashtag."),
        "username": _("Send the username (without the link)."),
        "media": _("Send the link of the media whose likers should be mentioned."),
        "answer_number": _("Send the number of the poll answer to vote for ({min} to {max})."),
        "min": _("Send the minimum quantity per post: from {min} to {max}."),
        "max": _("Send the maximum quantity per post: from {min} to {max}."),
        "posts": _("How many new posts should it cover? Or press “Skip” for no limit."),
        "old_posts": _("How many old posts should it cover too? Or press “Skip”."),
        "delay": _("Delay in minutes before each post is served: choose one."),
        "expiry": _(
            "Expiry date (day/month/year, like 31/12/2026, or 2026-12-31), or press “Skip”."
        ),
    }
    text = prompts.get(field, _("Send the {field}.").format(field=field))
    return text.format(min=notices.count(low), max=notices.count(high))


def form_error(error: FormError) -> str:
    """A rejected answer in plain words; the step stays the same."""
    params: dict[str, Any] = {key: escape(str(value)) for key, value in error.params.items()}
    code = error.code
    if code.endswith("_not_number"):
        return _("Please send a whole number, like 1000.")
    if code.endswith("_out_of_range"):
        return _("The number must be from {min} to {max}.").format(**params)
    if code.endswith("_too_long"):
        return _("That is too long: at most {max} characters.").format(**params)
    messages: Mapping[str, str] = {
        "link_invalid": _(
            "That does not look like a link. Send a full link, like https://instagram.com/name."
        ),
        "media_invalid": _("That does not look like a link to a post or a video."),
        "empty": _("Please send some text."),
        "too_many_lines": _("Too many lines: at most {max}, you sent {count}."),
        "too_few_lines": _("Too few lines: at least {min}, you sent {count}."),
        "line_too_long": _("Line {line} is too long: at most {max} characters."),
        "username_invalid": _("“{value}” is not a valid username."),
        "hashtag_invalid": _("“{value}” is not a valid hashtag."),
        "max_below_min": _("The maximum must not be less than the minimum ({min})."),
        "delay_invalid": _("Choose one of these delays (minutes): {choices}."),
        "date_invalid": _("Send the date as day/month/year, like 31/12/2026, or as 2026-12-31."),
        "date_in_past": _("That date is in the past."),
        "dripfeed_invalid": _("Press “Yes” or “Skip”."),
    }
    text = messages.get(code, _("That answer is not valid here. Please try again."))
    try:
        return text.format(**params)
    except (KeyError, IndexError):
        return text


def summary(order: Order, service: Service, answers: Mapping[str, object]) -> str:
    """The confirmation: what will be ordered and what it costs (in reseller mode, what the
    wallet pays: the customer price stored with the draft)."""
    details = notices.order_details(order, _)
    head = [_("<b>Please check your order</b>"), "", *details, ""]
    wallet = order.customer_currency is not None
    if wallet and order.customer_price is None:
        return "\n".join([*head, notices.not_offered_text(_)])
    price = format_money(*notices.shown_price(order))
    basis = price_basis(service, answers)
    if wallet and basis == "up_to":  # a bounded subscription is paid at its most
        price_line = _("Price: {price}").format(price=price)
        return "\n".join([*head, price_line, notices.unused_posts_line(_)])
    if basis == "per_post":
        price_line = _("Price: up to {price} per post").format(price=price)
    elif basis == "up_to":
        price_line = _("Price: up to {price}").format(price=price)
    else:
        price_line = _("Price: {price}").format(price=price)
    return "\n".join([*head, price_line])


def order_card(order: Order, refills: list[Refill]) -> str:
    lines = [f"<b>{notices.order_heading(order, _)}</b>", *notices.order_details(order, _)]
    status = notices.state_label(order, _)
    lines.append(_("Status: {status}").format(status=f"<b>{status}</b>"))
    lines.append(notices.price_line(order, _))
    wallet = order.customer_currency is not None  # its customer never reads the panel's charge
    if order.charge is not None and not wallet:
        lines.append(notices.charge_line(order.charge, order.currency, _))
    if order.start_count is not None:
        lines.append(
            _("Count when it started: {count}").format(count=notices.count(order.start_count))
        )
    if order.remains:
        lines.append(notices.still_to_deliver(order.remains, _))
    if order.state == SubmissionState.UNKNOWN:
        lines += ["", notices.unknown_outcome_text(_)]
    if order.state == SubmissionState.FAILED and order.error:
        if wallet and is_out_of_funds(order.error):
            lines.append(notices.wallet_refusal(order.error, _))
        else:
            lines.append(_("Reason: {reason}").format(reason=escape(order.error)))
    if len(refills) > SHOWN_REFILLS:
        lines.append(_("Refills: {count} in all; the latest:").format(count=len(refills)))
    for refill in refills[-SHOWN_REFILLS:]:
        lines.append(
            _("Refill #{id}: {status}").format(
                id=refill.panel_refill_id, status=refill_status_label(refill.status, _)
            )
        )
    return "\n".join(lines)
