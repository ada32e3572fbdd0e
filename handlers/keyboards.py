"""Inline keyboards of the conversation: catalog pages, form steps, confirmation, orders."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.catalog import Category, Page
from bot.forms import DELAY_CHOICES, Field
from bot.panel.models import OrderStatus, Service, is_terminal_order_status
from handlers.callbacks import (
    CategoriesPage,
    DraftAction,
    FormAction,
    OrderAction,
    OrdersPage,
    SearchStart,
    ServicePick,
    ServicesPage,
)
from handlers.texts import order_ident, service_line, state_label
from storage.models import Order, SubmissionState

MAX_BUTTON_TEXT = 60


def _short(text: str) -> str:
    return text if len(text) <= MAX_BUTTON_TEXT else text[: MAX_BUTTON_TEXT - 1] + "…"


def _pager(
    builder: InlineKeyboardBuilder, has_prev: bool, has_next: bool, prev: str, nxt: str
) -> None:
    row = []
    if has_prev:
        row.append(InlineKeyboardButton(text=_("‹ Previous"), callback_data=prev))
    if has_next:
        row.append(InlineKeyboardButton(text=_("Next ›"), callback_data=nxt))
    if row:
        builder.row(*row)


def categories(page: Page[Category], keys: Sequence[str], by: int = 0) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for category, key in zip(page.items, keys, strict=True):
        builder.row(
            InlineKeyboardButton(
                text=_short(f"{category.name} ({category.service_count})"),
                callback_data=ServicesPage(category=key, page=0, by=by).pack(),
            )
        )
    _pager(
        builder,
        page.has_prev,
        page.has_next,
        CategoriesPage(page=max(page.page - 1, 0), by=by).pack(),
        CategoriesPage(page=page.page + 1, by=by).pack(),
    )
    builder.row(
        InlineKeyboardButton(text=_("🔎 Search"), callback_data=SearchStart(by=by).pack()),
        InlineKeyboardButton(text=_("✖️ Cancel"), callback_data=FormAction(action="cancel").pack()),
    )
    return builder.as_markup()


def services(
    page: Page[Service],
    category_key: str,
    currency: str,
    *,
    by: int = 0,
    back_to_categories: bool = True,
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for service in page.items:
        builder.row(
            InlineKeyboardButton(
                text=_short(service_line(service, currency)),
                callback_data=ServicePick(service=service.id, by=by).pack(),
            )
        )
    _pager(
        builder,
        page.has_prev,
        page.has_next,
        ServicesPage(category=category_key, page=max(page.page - 1, 0), by=by).pack(),
        ServicesPage(category=category_key, page=page.page + 1, by=by).pack(),
    )
    if back_to_categories:
        builder.row(
            InlineKeyboardButton(
                text=_("‹ Categories"), callback_data=CategoriesPage(page=0, by=by).pack()
            )
        )
    return builder.as_markup()


def search_results(found: Sequence[Service], currency: str, by: int = 0) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for service in found:
        builder.row(
            InlineKeyboardButton(
                text=_short(service_line(service, currency)),
                callback_data=ServicePick(service=service.id, by=by).pack(),
            )
        )
    builder.row(
        InlineKeyboardButton(
            text=_("‹ Categories"), callback_data=CategoriesPage(page=0, by=by).pack()
        )
    )
    return builder.as_markup()


def search_cancel(by: int = 0) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("‹ Categories"), callback_data=CategoriesPage(page=0, by=by).pack()
                ),
                InlineKeyboardButton(
                    text=_("✖️ Cancel"), callback_data=FormAction(action="cancel").pack()
                ),
            ]
        ]
    )


def form_step(field: Field, *, can_go_back: bool = True) -> InlineKeyboardMarkup:
    """Buttons of one step: its choices (Yes/Skip, delays), then Back and Cancel."""
    builder = InlineKeyboardBuilder()
    if field.name == "dripfeed":
        builder.row(
            InlineKeyboardButton(text=_("Yes"), callback_data=FormAction(action="yes").pack()),
            InlineKeyboardButton(text=_("Skip"), callback_data=FormAction(action="skip").pack()),
        )
    elif field.name == "delay":
        builder.row(
            *[
                InlineKeyboardButton(
                    text=str(minutes),
                    callback_data=FormAction(action="delay", value=minutes).pack(),
                )
                for minutes in DELAY_CHOICES
            ],
            width=4,
        )
    elif field.optional:
        builder.row(
            InlineKeyboardButton(text=_("Skip"), callback_data=FormAction(action="skip").pack())
        )
    navigation = [
        InlineKeyboardButton(text=_("✖️ Cancel"), callback_data=FormAction(action="cancel").pack())
    ]
    if can_go_back:
        back = InlineKeyboardButton(
            text=_("‹ Back"), callback_data=FormAction(action="back").pack()
        )
        navigation.insert(0, back)
    builder.row(*navigation)
    return builder.as_markup()


def confirmation(order_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✅ Confirm"),
                    callback_data=DraftAction(action="confirm", order=order_id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("✖️ Cancel"),
                    callback_data=DraftAction(action="drop", order=order_id).pack(),
                ),
            ],
            [
                InlineKeyboardButton(
                    text=_("‹ Back"), callback_data=FormAction(action="back").pack()
                )
            ],
        ]
    )


def order_list(orders: Sequence[Order], page: int, pages: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for order in orders:
        ident = order_ident(order)
        builder.row(
            InlineKeyboardButton(
                text=_short(f"{ident} · {order.service_name} · {state_label(order)}"),
                callback_data=OrderAction(action="show", order=order.id).pack(),
            )
        )
    _pager(
        builder,
        page > 0,
        page + 1 < pages,
        OrdersPage(page=max(page - 1, 0)).pack(),
        OrdersPage(page=page + 1).pack(),
    )
    return builder.as_markup()


def order_card(order: Order) -> InlineKeyboardMarkup:
    """Only the actions that apply to this order now."""
    builder = InlineKeyboardBuilder()
    placed = order.state == SubmissionState.PLACED
    is_open = placed and not is_terminal_order_status(order.status)
    row = []
    if is_open:
        row.append(_action(_("🔄 Refresh"), "refresh", order))
    if (
        placed
        and order.can_refill
        and order.status in (OrderStatus.COMPLETED, OrderStatus.PARTIAL)
    ):
        row.append(_action(_("♻️ Refill"), "refill", order))
    if row:
        builder.row(*row)
    if is_open and order.can_cancel:
        builder.row(_action(_("🛑 Cancel order"), "cancel", order))
    builder.row(
        InlineKeyboardButton(text=_("‹ My orders"), callback_data=OrdersPage(page=0).pack())
    )
    return builder.as_markup()


def _action(text: str, action: str, order: Order) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=OrderAction(action=action, order=order.id).pack()
    )
