"""Inline keyboards: catalog pages, form steps, confirmation, orders, and the admins' buttons.

Every keyboard shown to a member carries them in `by` (see `handlers.callbacks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from bot import notices
from bot.catalog import Category, Page
from bot.forms import DELAY_CHOICES, Field
from bot.notices import Translate
from bot.notify import DueOrder, Keyboard
from bot.ordering import Order, PriceList, SubmissionState
from bot.panel.models import OrderStatus, Service, is_terminal_order_status, parse_order_status
from handlers.callbacks import (
    AccessDecision,
    AccessRequest,
    Approval,
    CategoriesPage,
    DraftAction,
    DraftStep,
    FavouritesPage,
    FavouriteToggle,
    FormAction,
    FormStep,
    MarkFailed,
    MarkPlaced,
    NewOrder,
    OrderAction,
    OrdersPage,
    OrderStep,
    SearchStart,
    ServicePick,
    ServicesPage,
    WalletOpen,
)
from handlers.texts import service_line

MAX_BUTTON_TEXT = 60
REFILLABLE = (OrderStatus.COMPLETED, OrderStatus.PARTIAL)


class Rows:
    """An inline keyboard, row by row, like aiogram's `InlineKeyboardBuilder.row` (at most
    `width` buttons a row, 8 by default) without its export, which deep-copies every button:
    a quarter of a millisecond per menu, on most updates."""

    MAX_WIDTH = 8

    def __init__(self) -> None:
        self._rows: list[list[InlineKeyboardButton]] = []

    def row(self, *buttons: InlineKeyboardButton, width: int = MAX_WIDTH) -> None:
        self._rows.extend(list(buttons[at : at + width]) for at in range(0, len(buttons), width))

    def as_markup(self) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(inline_keyboard=self._rows)


def _short(text: str) -> str:
    return text if len(text) <= MAX_BUTTON_TEXT else text[: MAX_BUTTON_TEXT - 1] + "…"


def _pager(builder: Rows, has_prev: bool, has_next: bool, prev: str, nxt: str) -> None:
    row = []
    if has_prev:
        row.append(InlineKeyboardButton(text=_("‹ Previous"), callback_data=prev))
    if has_next:
        row.append(InlineKeyboardButton(text=_("Next ›"), callback_data=nxt))
    if row:
        builder.row(*row)


@dataclass(frozen=True, slots=True)
class Menu:
    """Whose ordering conversation a keyboard belongs to: its flow and its member."""

    flow: int
    by: int


def _form_button(text: str, action: FormStep, menu: Menu, value: int = 0) -> InlineKeyboardButton:
    data = FormAction(action=action, value=value, flow=menu.flow, by=menu.by)
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def categories(
    page: Page[Category], keys: Sequence[str], menu: Menu, *, favourites: bool = False
) -> InlineKeyboardMarkup:
    builder = Rows()
    if favourites and page.page == 0:
        data = FavouritesPage(flow=menu.flow, by=menu.by).pack()
        builder.row(InlineKeyboardButton(text=_("★ Favourites"), callback_data=data))
    for category, key in zip(page.items, keys, strict=True):
        builder.row(
            InlineKeyboardButton(
                text=_short(f"{category.name} ({category.service_count})"),
                callback_data=ServicesPage(
                    category=key, page=0, flow=menu.flow, by=menu.by
                ).pack(),
            )
        )
    _pager(
        builder,
        page.has_prev,
        page.has_next,
        CategoriesPage(page=max(page.page - 1, 0), flow=menu.flow, by=menu.by).pack(),
        CategoriesPage(page=page.page + 1, flow=menu.flow, by=menu.by).pack(),
    )
    search = SearchStart(flow=menu.flow, by=menu.by).pack()
    builder.row(
        InlineKeyboardButton(text=_("🔎 Search"), callback_data=search),
        _form_button(_("✖️ Cancel"), FormStep.CANCEL, menu),
    )
    return builder.as_markup()


def services(
    page: Page[Service],
    category_key: str,
    prices: PriceList,
    menu: Menu,
) -> InlineKeyboardMarkup:
    builder = Rows()
    for service in page.items:
        builder.row(
            InlineKeyboardButton(
                text=service_line(service, prices, MAX_BUTTON_TEXT),
                callback_data=ServicePick(service=service.id, flow=menu.flow, by=menu.by).pack(),
            )
        )

    def turn(to: int) -> str:
        return ServicesPage(category=category_key, page=to, flow=menu.flow, by=menu.by).pack()

    _pager(builder, page.has_prev, page.has_next, turn(max(page.page - 1, 0)), turn(page.page + 1))
    builder.row(_to_categories(menu))
    return builder.as_markup()


def _to_categories(menu: Menu) -> InlineKeyboardButton:
    data = CategoriesPage(page=0, flow=menu.flow, by=menu.by)
    return InlineKeyboardButton(text=_("‹ Categories"), callback_data=data.pack())


def search_results(
    found: Sequence[Service], prices: PriceList, menu: Menu
) -> InlineKeyboardMarkup:
    builder = Rows()
    for service in found:
        builder.row(
            InlineKeyboardButton(
                text=service_line(service, prices, MAX_BUTTON_TEXT),
                callback_data=ServicePick(service=service.id, flow=menu.flow, by=menu.by).pack(),
            )
        )
    builder.row(_to_categories(menu))
    return builder.as_markup()


def search_cancel(menu: Menu) -> InlineKeyboardMarkup:
    cancel = _form_button(_("✖️ Cancel"), FormStep.CANCEL, menu)
    return InlineKeyboardMarkup(inline_keyboard=[[_to_categories(menu), cancel]])


def favourite_button(service_id: int, starred: bool, by: int) -> InlineKeyboardButton:
    text = _("★ In favourites (tap to remove)") if starred else _("☆ Add to favourites")
    data = FavouriteToggle(service=service_id, by=by).pack()
    return InlineKeyboardButton(text=text, callback_data=data)


def with_favourite(
    markup: InlineKeyboardMarkup, service_id: int, starred: bool, by: int
) -> InlineKeyboardMarkup:
    """A service card's keyboard with its ☆/★ row first (replacing the one it had)."""
    rows = [
        row
        for row in markup.inline_keyboard
        if not any((b.callback_data or "").startswith("fv:") for b in row)
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[[favourite_button(service_id, starred, by)], *rows]
    )


def form_step(field: Field, menu: Menu) -> InlineKeyboardMarkup:
    """Buttons of one step: its choices (Yes/Skip, delays), then Back and Cancel."""
    builder = Rows()
    if field.name == "dripfeed":
        builder.row(
            _form_button(_("Yes"), FormStep.YES, menu),
            _form_button(_("Skip"), FormStep.SKIP, menu),
        )
    elif field.name == "delay":
        delays = [
            _form_button(str(minutes), FormStep.DELAY, menu, minutes) for minutes in DELAY_CHOICES
        ]
        builder.row(*delays, width=4)
    elif field.optional:
        builder.row(_form_button(_("Skip"), FormStep.SKIP, menu))
    builder.row(
        _form_button(_("‹ Back"), FormStep.BACK, menu),
        _form_button(_("✖️ Cancel"), FormStep.CANCEL, menu),
    )
    return builder.as_markup()


# The answers a summary offers to change in one tap, by their index in FormAction.value.
CHANGEABLE = ("link", "quantity")


def confirmation(
    order_id: int, menu: Menu, changeable: Sequence[str] = (), *, top_up: bool = False
) -> InlineKeyboardMarkup:
    """Confirm / Cancel of a summary; `top_up` (reseller mode, a short balance) adds the
    wallet's button, which comes back to this summary after paying."""

    def draft(text: str, action: DraftStep) -> InlineKeyboardButton:
        data = DraftAction(action=action, order=order_id, by=menu.by)
        return InlineKeyboardButton(text=text, callback_data=data.pack())

    rows = [
        [draft(_("✅ Confirm"), DraftStep.CONFIRM), draft(_("✖️ Cancel"), DraftStep.DROP)],
        _change_buttons(changeable, menu),
        [_form_button(_("‹ Back"), FormStep.BACK, menu)],
    ]
    if top_up:
        wallet = WalletOpen(order=order_id, by=menu.by).pack()
        rows.insert(0, [InlineKeyboardButton(text=_("💳 Top up"), callback_data=wallet)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _change_buttons(changeable: Sequence[str], menu: Menu) -> list[InlineKeyboardButton]:
    labels = {"link": _("✏️ Change link"), "quantity": _("✏️ Change quantity")}
    return [
        _form_button(labels[name], FormStep.CHANGE, menu, CHANGEABLE.index(name))
        for name in CHANGEABLE
        if name in changeable
    ]


def order_list(orders: Sequence[Order], page: int, pages: int, by: int) -> InlineKeyboardMarkup:
    builder = Rows()
    for order in orders:
        ident = notices.order_ident(order, _)
        state = notices.state_label(order, _)
        # The name gives way, so the id and the state are always read whole.
        room = max(MAX_BUTTON_TEXT - len(ident) - len(state) - 6, 10)
        label = f"{ident} · {notices.clip(order.service_name, room)} · {state}"
        builder.row(_action(_short(label), OrderStep.SHOW, order, by))
    _pager(
        builder,
        page > 0,
        page + 1 < pages,
        OrdersPage(page=max(page - 1, 0), by=by).pack(),
        OrdersPage(page=page + 1, by=by).pack(),
    )
    return builder.as_markup()


def order_card(order: Order, by: int) -> InlineKeyboardMarkup:
    """Only the actions that apply to this order now."""
    builder = Rows()
    placed = order.state == SubmissionState.PLACED
    is_open = placed and not is_terminal_order_status(order.status)
    row = []
    if is_open:
        row.append(_action(_("🔄 Refresh"), OrderStep.REFRESH, order, by))
    if placed and order.can_refill and order.status in REFILLABLE:
        row.append(_action(_("♻️ Refill"), OrderStep.REFILL, order, by))
    if row:
        builder.row(*row)
    if is_open and order.can_cancel:
        builder.row(_action(_("🛑 Cancel order"), OrderStep.CANCEL, order, by))
    if placed:
        builder.row(_action(_("🔁 Order again"), OrderStep.AGAIN, order, by))
    builder.row(
        InlineKeyboardButton(text=_("‹ My orders"), callback_data=OrdersPage(page=0, by=by).pack())
    )
    return builder.as_markup()


def placed(order: Order, by: int) -> InlineKeyboardMarkup:
    """Under "Order placed": its card (refresh, refill, cancel a mistake) and the next order."""
    builder = Rows()
    builder.row(
        _action(_("📄 Details"), OrderStep.SHOW, order, by),
        InlineKeyboardButton(text=_("🛒 New order"), callback_data=NewOrder(by=by).pack()),
    )
    return builder.as_markup()


def _action(text: str, action: OrderStep, order: Order, by: int) -> InlineKeyboardButton:
    data = OrderAction(action=action, order=order.id, by=by)
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def cancel_question(order: Order, by: int) -> InlineKeyboardMarkup:
    """ "Cancel order #N?": only Yes calls the panel; No shows the card again."""
    return _two(
        _action(_("Yes"), OrderStep.CANCEL_YES, order, by),
        _action(_("No"), OrderStep.SHOW, order, by),
    )


def fresh_start(by: int) -> InlineKeyboardMarkup:
    """What a stale menu offers instead: a new order, or the list of orders."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=_("🛒 New order"), callback_data=NewOrder(by=by).pack()),
                InlineKeyboardButton(
                    text=_("📋 My orders"), callback_data=OrdersPage(page=0, by=by).pack()
                ),
            ]
        ]
    )


# --- admins -------------------------------------------------------------------------------------


def _two(left: InlineKeyboardButton, right: InlineKeyboardButton) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[left, right]])


def approval(order_id: int, _: Translate) -> InlineKeyboardMarkup:
    yes = Approval(approve=True, order=order_id).pack()
    no = Approval(approve=False, order=order_id).pack()
    return _two(
        InlineKeyboardButton(text=_("✅ Approve"), callback_data=yes),
        InlineKeyboardButton(text=_("✖️ Reject"), callback_data=no),
    )


def reconcile(order_id: int, _: Translate = _) -> InlineKeyboardMarkup:
    return _two(
        InlineKeyboardButton(
            text=_("✅ Mark placed"), callback_data=MarkPlaced(order=order_id).pack()
        ),
        InlineKeyboardButton(
            text=_("✖️ Mark failed"), callback_data=MarkFailed(order=order_id).pack()
        ),
    )


def as_json(markup: InlineKeyboardMarkup) -> Keyboard:
    return markup.model_dump(mode="json", exclude_none=True)


class NoticeKeyboards:
    """The buttons of pushed messages (`bot.notify.NoticeButtons`), in the recipient's language."""

    def approval(self, order_id: int, _: Translate) -> Keyboard:
        return as_json(approval(order_id, _))

    def order_update(self, order: DueOrder, status: str, _: Translate) -> Keyboard:
        by = order.user_id

        def action(text: str, step: OrderStep) -> InlineKeyboardButton:
            data = OrderAction(action=step, order=order.id, by=by)
            return InlineKeyboardButton(text=text, callback_data=data.pack())

        row = [action(_("📄 Details"), OrderStep.SHOW)]
        if order.can_refill and parse_order_status(status) in REFILLABLE:
            row.append(action(_("♻️ Refill"), OrderStep.REFILL))
        row.append(action(_("🔁 Order again"), OrderStep.AGAIN))
        return as_json(InlineKeyboardMarkup(inline_keyboard=[row]))

    def reconcile(self, order_id: int, _: Translate) -> Keyboard:
        return as_json(reconcile(order_id, _))

    def access_request(self, user_id: int, _: Translate) -> Keyboard:
        allow = AccessDecision(allow=True, user=user_id).pack()
        deny = AccessDecision(allow=False, user=user_id).pack()
        return as_json(
            _two(
                InlineKeyboardButton(text=_("✅ Allow"), callback_data=allow),
                InlineKeyboardButton(text=_("✖️ Deny"), callback_data=deny),
            )
        )


def ask_for_access(by: int) -> InlineKeyboardMarkup:
    button = InlineKeyboardButton(
        text=_("🙋 Ask for access"), callback_data=AccessRequest(by=by).pack()
    )
    return InlineKeyboardMarkup(inline_keyboard=[[button]])
