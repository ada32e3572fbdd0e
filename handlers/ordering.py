"""The ordering conversation: categories → services → the service's form → confirmation."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from html import escape
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, ExceptionTypeFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ErrorEvent, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from bot import notices
from bot.access import Access
from bot.catalog import Catalog, CatalogSnapshot
from bot.config import Settings
from bot.forms import DELAY_CHOICES, Field, FormError, next_field, steps_for, validate_field
from bot.ordering import (
    Order,
    OrderActionError,
    Ordering,
    Outcome,
    Placement,
    SubmissionState,
)
from bot.panel.errors import PanelError, PanelUnavailable
from bot.panel.models import Service
from bot.people import People
from handlers import keyboards, texts
from handlers.access import refusal
from handlers.callbacks import (
    CategoriesPage,
    DraftAction,
    DraftStep,
    FavouritesPage,
    FavouriteToggle,
    FormAction,
    FormStep,
    NewOrder,
    OrderAction,
    OrderStep,
    SearchStart,
    ServicePick,
    ServicesPage,
)
from handlers.filters import InCurrentFlow, MayOrder, MenuButton, PressedOn
from handlers.flows import FLOW, Flow
from handlers.keyboards import CHANGEABLE, Menu
from handlers.screens import ask, member, replace
from handlers.states import OrderForm

SEARCH_LIMIT = 20
# Confirm calls the panel: answer the press at once, so no spinner runs through `add`.
PLACING = {"callback_answer": {"pre": True, "text": __("Placing your order…")}}


class CatalogUnavailable(Exception):
    """The panel's service list could not be loaded."""


async def _snapshot(catalog: Catalog) -> CatalogSnapshot:
    try:
        return await catalog.get()
    except (PanelError, PanelUnavailable) as error:
        raise CatalogUnavailable from error


async def catalog_unavailable(event: ErrorEvent) -> None:
    """Any step that needs the catalog while the panel cannot give it: say so, keep the step."""
    text = _("The service list is not available right now. Please try again in a minute.")
    query, message = event.update.callback_query, event.update.message
    if query is not None:
        try:
            await query.answer(text, show_alert=True)
            return
        except TelegramBadRequest:  # answered already: say it in the chat instead
            message = query.message if isinstance(query.message, Message) else None
    if message is not None:
        await message.answer(text)


# --- browsing the catalog ----------------------------------------------------------------


async def _categories_screen(
    catalog: Catalog, settings: Settings, page: int, menu: Menu, people: People | None = None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The categories; the first page offers ★ Favourites to a member who has some."""
    snapshot = await _snapshot(catalog)
    categories = snapshot.categories_page(page, settings.page_size)
    if not categories.items:
        return _("The panel has no services to offer right now."), None
    text = _("Choose a category:")
    if categories.pages > 1:
        text += " " + _("(page {page} of {pages})").format(
            page=categories.page + 1, pages=categories.pages
        )
    keys = [category.key for category in categories.items]
    starred = people is not None and page == 0 and bool(await people.favourites(menu.by))
    return text, keyboards.categories(categories, keys, menu, favourites=starred)


async def _services_screen(
    snapshot: CatalogSnapshot,
    ordering: Ordering,
    settings: Settings,
    category_key: str,
    page: int,
    menu: Menu,
) -> tuple[str, InlineKeyboardMarkup]:
    category = snapshot.category_by_key(category_key)
    name = category.name if category is not None else ""
    services = snapshot.services_page(category_key, page, settings.page_size)
    text = _("<b>{category}</b>\nChoose a service:").format(category=escape(name))
    if services.pages > 1:
        text += " " + _("(page {page} of {pages})").format(
            page=services.page + 1, pages=services.pages
        )
    prices = await ordering.price_list()
    return text, keyboards.services(services, category_key, prices, menu)


async def start_order(
    message: Message, state: FSMContext, catalog: Catalog, settings: Settings, people: People
) -> None:
    """/order (or 🛒): a new flow; the previous one's menu is retired."""
    flow = Flow.of(state, message)
    menu = Menu(await flow.start(message, OrderForm.browsing), member(message))
    text, markup = await _categories_screen(catalog, settings, 0, menu, people)
    await flow.shown(await message.answer(text, reply_markup=markup))


async def new_order(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    settings: Settings,
) -> None:
    """ "🛒 New order" where an old menu was pressed: the same as /order, in that message."""
    flow = Flow.of(state, message)
    menu = Menu(await flow.start(message, OrderForm.browsing), query.from_user.id)
    text, markup = await _categories_screen(catalog, settings, 0, menu)
    await replace(query, text, markup)
    await flow.shown(message)


async def categories_page(
    query: CallbackQuery,
    callback_data: CategoriesPage,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    settings: Settings,
    people: People,
) -> None:
    flow = Flow.of(state, message)
    await flow.reset(OrderForm.browsing)
    menu = Menu(callback_data.flow, callback_data.by)
    text, markup = await _categories_screen(catalog, settings, callback_data.page, menu, people)
    await replace(query, text, markup)
    await flow.shown(message)


async def services_page(
    query: CallbackQuery,
    callback_data: ServicesPage,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
    settings: Settings,
) -> None:
    flow = Flow.of(state, message)
    menu = Menu(callback_data.flow, callback_data.by)
    snapshot = await _snapshot(catalog)
    if snapshot.category_by_key(callback_data.category) is None:
        callback_answer.text = _("This category is no longer available.")
        callback_answer.show_alert = True
        text, markup = await _categories_screen(catalog, settings, 0, menu)
    else:
        await flow.reset(OrderForm.browsing)
        text, markup = await _services_screen(
            snapshot, ordering, settings, callback_data.category, callback_data.page, menu
        )
    await replace(query, text, markup)
    await flow.shown(message)


async def start_search(
    query: CallbackQuery, callback_data: SearchStart, message: Message, state: FSMContext
) -> None:
    flow = Flow.of(state, message)
    await state.set_state(OrderForm.searching)
    menu = Menu(callback_data.flow, callback_data.by)
    question, buttons = await ask(
        message,
        query.from_user,
        _("Send a word or two to search for, like “instagram followers”."),
        keyboards.search_cancel(menu),
    )
    await flow.shown(buttons, question, _litter(buttons))


def _litter(message: Message | None) -> Message | None:
    """A group's "⬇️" bubble goes with its question; a private chat's menu stays."""
    if message is None or message.chat.type == "private":
        return None
    return message


async def search(
    message: Message, state: FSMContext, catalog: Catalog, ordering: Ordering
) -> None:
    """Words typed at the category step or after 🔎 Search: the services they find."""
    flow = Flow.of(state, message)
    number = await flow.number()
    if number is None:  # a browsing state restored without its flow: start one
        number = await flow.start(message, OrderForm.browsing)
    menu = Menu(number, member(message))
    snapshot = await _snapshot(catalog)
    words = (message.text or "").strip()[:100]
    found = snapshot.search(words, limit=SEARCH_LIMIT)
    if not found:
        text = _("Nothing found for “{query}”. Try other words.").format(query=escape(words))
        await flow.shown(await message.answer(text, reply_markup=keyboards.search_cancel(menu)))
        return
    prices = await ordering.price_list()
    shown = await message.answer(
        _("Found {count}. Choose a service:").format(count=len(found)),
        reply_markup=keyboards.search_results(found, prices, menu),
    )
    await flow.shown(shown)


async def search_needs_text(message: Message) -> None:
    await message.answer(_("Please send the words to search for as text."))


# --- the form ----------------------------------------------------------------------------


async def pick_service(
    query: CallbackQuery,
    callback_data: ServicePick,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
    people: People,
) -> None:
    snapshot = await _snapshot(catalog)
    # The button carries the service id; a service the panel dropped is never swapped for another.
    service = snapshot.service(callback_data.service)
    if service is None:
        callback_answer.text = _("This service is no longer available.")
        callback_answer.show_alert = True
        return
    flow = Flow.of(state, message)
    await flow.reset(OrderForm.answering, service=service.id, answers={})
    card = texts.service_card(service, await ordering.price_list())
    field = _first_field(service)
    steps = keyboards.form_step(field, Menu(callback_data.flow, callback_data.by))
    starred = service.id in await people.favourites(callback_data.by)
    if message.chat.type == "private":
        prompt = texts.prompt(field.name, service)
        card_steps = keyboards.with_favourite(steps, service.id, starred, callback_data.by)
        await replace(query, f"{card}\n\n{prompt}", card_steps)
        await flow.shown(message)
        return
    # The menu becomes the card, with only its ☆ left; the step's buttons go below.
    star = keyboards.with_favourite(
        InlineKeyboardMarkup(inline_keyboard=[]), service.id, starred, callback_data.by
    )
    await replace(query, card, star)
    await flow.menu_cleared()
    prompt = texts.prompt(field.name, service)
    question, buttons = await ask(message, query.from_user, prompt, steps)
    await flow.shown(buttons, question, buttons)


async def favourites_page(
    query: CallbackQuery,
    callback_data: FavouritesPage,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
    people: People,
) -> None:
    """★ Favourites: the starred services the panel still offers."""
    snapshot = await _snapshot(catalog)
    starred = [snapshot.service(number) for number in await people.favourites(callback_data.by)]
    found = [service for service in starred if service is not None][:SEARCH_LIMIT]
    menu = Menu(callback_data.flow, callback_data.by)
    prices = await ordering.price_list()
    text = _("★ Your favourites:") if found else _("None of your favourites is offered now.")
    await replace(query, text, keyboards.search_results(found, prices, menu))
    await Flow.of(state, message).shown(message)


async def toggle_favourite(
    query: CallbackQuery,
    callback_data: FavouriteToggle,
    callback_answer: CallbackAnswer,
    message: Message,
    people: People,
) -> None:
    """☆ / ★ on a service card: one tap adds, one tap removes."""
    starred = await people.toggle_favourite(callback_data.by, callback_data.service)
    callback_answer.text = _("Added to favourites.") if starred else _("Removed from favourites.")
    markup = message.reply_markup or InlineKeyboardMarkup(inline_keyboard=[])
    flipped = keyboards.with_favourite(markup, callback_data.service, starred, callback_data.by)
    with contextlib.suppress(TelegramBadRequest):  # pressed twice at once: shown already
        await message.edit_reply_markup(reply_markup=flipped)


def _first_field(service: Service) -> Field:
    field = next_field(service, {})
    if field is None:  # every type in bot.forms asks at least one thing
        raise LookupError(f"service type {service.type!r} asks nothing")
    return field


async def _form(state: FSMContext, catalog: Catalog) -> tuple[Service | None, dict[str, Any]]:
    data = await state.get_data()
    snapshot = await _snapshot(catalog)
    return snapshot.service(int(data.get("service", 0))), dict(data.get("answers") or {})


async def _service_gone(target: Message, state: FSMContext) -> None:
    await Flow.of(state, target).end()
    await target.answer(_("This service is no longer available. Send /order to choose again."))


async def _menu_of(state: FSMContext, origin: Origin, by: int | None = None) -> Menu:
    number = (await state.get_data()).get(FLOW)
    return Menu(int(number) if number is not None else 0, by or _member_of(origin))


async def answer_step(
    message: Message, state: FSMContext, catalog: Catalog, ordering: Ordering
) -> None:
    service, answers = await _form(state, catalog)
    if service is None:
        await _service_gone(message, state)
        return
    field = next_field(service, answers)
    if field is None:  # complete already (e.g. restored state): show the summary again
        await _show_summary(message, state, ordering, service, answers)
        return
    try:
        value = validate_field(field.name, message.text or "", service, answers)
    except FormError as error:
        # The same step again, its old prompt retired: one live Back/Cancel row, not two.
        text = texts.form_error(error) + "\n\n" + texts.prompt(field.name, service)
        markup = keyboards.form_step(field, await _menu_of(state, message))
        await _show(message, state, text, markup, typed=True)
        return
    answers[field.name] = value
    await _advance(message, state, ordering, service, answers)


async def answer_needs_text(message: Message) -> None:
    await message.answer(_("Please answer with text, or use the buttons."))


Origin = Message | CallbackQuery  # what moved the form on: a typed answer or a button


async def _show(origin: Origin, state: FSMContext, text: str, markup: Any, *, typed: bool) -> None:
    """Show the next screen as the flow's live menu. A button in a private chat edits its
    own message in place; anything else gets a new message (a ForceReply question in groups
    when `typed`), and the previous menu is retired."""
    if isinstance(origin, CallbackQuery):
        if not isinstance(origin.message, Message):  # PressedOn let only these through
            return
        message = origin.message
        if message.chat.type == "private":
            await replace(origin, text, markup)
            await Flow.of(state, message).shown(message)
            return
    else:
        message = origin
    flow = Flow.of(state, message)
    if typed:
        question, buttons = await ask(message, origin.from_user, text, markup)
        await flow.shown(buttons, question, _litter(buttons))
    else:
        await flow.shown(await message.answer(text, reply_markup=markup))


def _chat_of(origin: Origin) -> int:
    if isinstance(origin, CallbackQuery):
        # PressedOn let only presses on a message through; its chat is the chat.
        return origin.message.chat.id if origin.message is not None else origin.from_user.id
    return origin.chat.id


def _member_of(origin: Origin) -> int:
    return origin.from_user.id if isinstance(origin, CallbackQuery) else member(origin)


async def _advance(
    origin: Origin,
    state: FSMContext,
    ordering: Ordering,
    service: Service,
    answers: dict[str, Any],
    *,
    by: int | None = None,
) -> None:
    """Store the answers and ask the next step, or show the summary when the form is full.

    `by`: the member, when `origin` is the bot's own message (Order again)."""
    field = next_field(service, answers)
    if field is None:
        await _show_summary(origin, state, ordering, service, answers, by=by)
        return
    await state.set_state(OrderForm.answering)
    await state.update_data(answers=answers, order=None)
    markup = keyboards.form_step(field, await _menu_of(state, origin, by))
    await _show(origin, state, texts.prompt(field.name, service), markup, typed=True)


async def _show_summary(
    origin: Origin,
    state: FSMContext,
    ordering: Ordering,
    service: Service,
    answers: dict[str, Any],
    *,
    by: int | None = None,
) -> None:
    menu = await _menu_of(state, origin, by)
    draft = await ordering.create_draft(_chat_of(origin), menu.by, service, answers)
    await state.set_state(OrderForm.confirming)
    await state.update_data(answers=answers, order=draft.id)
    summary, markup = _summary_screen(draft, service, answers, menu)
    await _show(origin, state, summary, markup, typed=False)


def _summary_screen(
    draft: Order, service: Service, answers: dict[str, Any], menu: Menu
) -> tuple[str, InlineKeyboardMarkup]:
    """A draft's summary with Confirm, Cancel and a Change button per answer that may change."""
    changeable = [field.name for field in steps_for(service) if field.name in CHANGEABLE]
    return texts.summary(draft, service, answers), keyboards.confirmation(
        draft.id, menu, changeable
    )


async def show_draft(
    target: Message, state: FSMContext, catalog: Catalog, ordering: Ordering, draft: int, by: int
) -> bool:
    """The summary of the conversation's draft again, as a new message (back from the wallet
    after a top-up); False when that draft is no longer waiting for Confirm."""
    order = await ordering.find(target.chat.id, draft)
    service, answers = await _form(state, catalog)
    data = await state.get_data()
    if order is None or order.state != SubmissionState.DRAFT or service is None:
        return False
    if data.get("order") != draft:
        return False
    await state.set_state(OrderForm.confirming)
    summary, markup = _summary_screen(order, service, answers, await _menu_of(state, target, by))
    await target.answer(summary, reply_markup=markup)
    return True


async def change_answer(
    query: CallbackQuery,
    callback_data: FormAction,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
) -> None:
    """✏️ Change link / quantity on a summary: that step again, the other answers kept."""
    if not await _leave_summary(query, callback_answer, message, state, ordering):
        return
    service, answers = await _form(state, catalog)
    if service is None:
        await _service_gone(message, state)
        return
    if callback_data.value < len(CHANGEABLE):
        answers.pop(CHANGEABLE[callback_data.value], None)
    await _advance(query, state, ordering, service, answers)


async def order_again(
    query: CallbackQuery,
    callback_data: OrderAction,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    ordering: Ordering,
    access: Access,
) -> None:
    """🔁 Order again (on a card or a push): the same service and answers, to a fresh summary
    at today's price, in a new message (the card or push it came from stays as it is)."""
    try:
        service, answers = await ordering.order_again(message.chat.id, callback_data.order, access)
    except OrderActionError as error:
        callback_answer.text = _order_again_refusal(error)
        callback_answer.show_alert = True
        return
    flow = Flow.of(state, message)
    await flow.start(message, OrderForm.answering)
    await state.update_data(service=service.id, answers=answers)
    await _advance(message, state, ordering, service, answers, by=query.from_user.id)


def _order_again_refusal(error: OrderActionError) -> str:
    if error.code == "service_gone":
        return _("This service is no longer offered. Send /order to choose another one.")
    if error.code == "panel_unavailable":
        return _("The panel is not answering right now. Please try again later.")
    if error.code == "not_yours":
        return _("Only the person who placed this order, or an admin, can do that.")
    return _("This order is not available.")


async def choose_in_step(
    query: CallbackQuery,
    callback_data: FormAction,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
) -> None:
    service, answers = await _form(state, catalog)
    if service is None:
        await _service_gone(message, state)
        return
    field = next_field(service, answers)
    value = _button_answer(field, callback_data)
    if field is None or value is _NO_ANSWER:
        callback_answer.text = _("This button is no longer active.")
        return
    answers[field.name] = value
    await _advance(query, state, ordering, service, answers)


_NO_ANSWER = object()


def _button_answer(field: Field | None, pressed: FormAction) -> object:
    """The answer a button gives to the current step, or _NO_ANSWER if it is not for it."""
    if field is None:
        return _NO_ANSWER
    if pressed.action == FormStep.SKIP and field.optional:
        return None
    if pressed.action == FormStep.YES and field.name == "dripfeed":
        return True
    if (
        pressed.action == FormStep.DELAY
        and field.name == "delay"
        and pressed.value in DELAY_CHOICES
    ):
        return pressed.value
    return _NO_ANSWER


async def _drop_summary(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    ordering: Ordering,
    order_id: int,
) -> bool:
    """Drop the summary's draft; False when it was no longer a draft (confirmed at the same
    moment, on another device or instance): then the order's real state is shown instead."""
    if await ordering.drop_draft(message.chat.id, query.from_user.id, order_id):
        return True
    order = await ordering.find(message.chat.id, order_id)
    if order is None or order.state == SubmissionState.CANCELED:
        return True  # gone already: leaving it is all there is to do
    if order.state == SubmissionState.SUBMITTING:
        # The Confirm that took it edits this message when the panel answers.
        callback_answer.text = _("This order is being placed right now.")
        callback_answer.show_alert = True
        return False
    await Flow.of(state, message).end(keep=message)
    refills = await ordering.refills_of(message.chat.id, order.id)
    card = keyboards.order_card(order, query.from_user.id)
    await replace(query, texts.order_card(order, refills), card)
    return False


async def _leave_summary(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    ordering: Ordering,
) -> bool:
    """Leaving the summary the conversation holds, if any: see `_drop_summary`."""
    order_id = (await state.get_data()).get("order")
    if not order_id:
        return True
    return await _drop_summary(query, callback_answer, message, state, ordering, int(order_id))


async def step_back(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
    settings: Settings,
) -> None:
    on_summary = await state.get_state() == OrderForm.confirming
    if on_summary and not await _leave_summary(query, callback_answer, message, state, ordering):
        return
    service, answers = await _form(state, catalog)
    if service is None:
        await _service_gone(message, state)
        return
    answered = [field.name for field in steps_for(service) if field.name in answers]
    if not answered:
        flow = Flow.of(state, message)
        await flow.reset(OrderForm.browsing)
        snapshot = await _snapshot(catalog)
        key = snapshot.category_key(service.category)
        menu = await _menu_of(state, query)
        text, markup = await _services_screen(snapshot, ordering, settings, key, 0, menu)
        await _show(query, state, text, markup, typed=False)
        return
    answers.pop(answered[-1])
    await _advance(query, state, ordering, service, answers)


def _cancelled() -> str:
    return _("Cancelled: nothing was ordered. Send /order to start again.")


async def _close(query: CallbackQuery, message: Message, state: FSMContext, text: str) -> None:
    """End the flow and say how in the pressed message (its litter goes, it stays)."""
    await Flow.of(state, message).end(keep=message)
    await replace(query, text)


async def cancel_form(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    ordering: Ordering,
) -> None:
    if not await _leave_summary(query, callback_answer, message, state, ordering):
        return
    await _close(query, message, state, _cancelled())


# --- confirmation ------------------------------------------------------------------------


async def drop_draft(
    query: CallbackQuery,
    callback_data: DraftAction,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    ordering: Ordering,
) -> None:
    if await _drop_summary(query, callback_answer, message, state, ordering, callback_data.order):
        await _close(query, message, state, _cancelled())


async def confirm_draft(
    query: CallbackQuery,
    callback_data: DraftAction,
    message: Message,
    state: FSMContext,
    ordering: Ordering,
    access: Access,
) -> None:
    """Place the order; the admins' messages it calls for are written by `Ordering` with it."""
    placement = await ordering.confirm(
        message.chat.id, query.from_user.id, callback_data.order, is_admin=access.is_admin
    )
    if placement.outcome in (Outcome.TAKEN, Outcome.GONE):
        return  # confirmed already (the first press's screen says how) or not this chat's
    text, markup = _placement_screen(placement, await _menu_of(state, query), query.from_user.id)
    if placement.outcome not in (Outcome.UNAVAILABLE, Outcome.SHORT):  # still confirmable
        await Flow.of(state, message).end(keep=message)
    await replace(query, text, markup)


def _placement_screen(placement: Placement, menu: Menu, by: int) -> tuple[str, Any]:
    order = placement.order
    if order is None:  # only TAKEN and GONE come without an order, and they show no screen
        return _("This order is not available."), None
    if placement.outcome == Outcome.PLACED:
        text = notices.placed_text(order, _, balance=placement.balance)
        return text, keyboards.placed(order, by)
    if placement.outcome == Outcome.AWAITING_APPROVAL:
        return _(
            "This order needs an admin's approval before it is placed (it is over a spending "
            "limit). I will tell you what they decide."
        ), None
    if placement.outcome == Outcome.UNKNOWN:
        return notices.unknown_outcome_text(_), None
    if placement.outcome == Outcome.DENIED:  # denied since the summary (maybe elsewhere)
        return refusal(order.user_id), None
    if placement.outcome == Outcome.CHANGED:
        return _(
            "This service changed on the panel since this summary was shown (its price or "
            "name), so nothing was ordered. Send /order to see it as it is now."
        ), None
    if placement.outcome == Outcome.SHORT:
        price, currency = notices.shown_price(order)
        text = notices.short_balance_text(price, placement.balance or Decimal(0), currency, _)
        return text, keyboards.confirmation(order.id, menu, top_up=True)
    if placement.outcome == Outcome.NOT_OFFERED:
        return notices.not_offered_text(_), None
    refund = placement.refund
    if placement.outcome == Outcome.UNAVAILABLE:
        text = _(
            "The panel is not answering right now, and nothing was ordered. "
            "Press Confirm again in a minute."
        )
        if refund is not None:
            text += "\n" + notices.refund_line(refund, _)
        return text, keyboards.confirmation(order.id, menu)
    if order.customer_currency is not None:
        text = notices.wallet_refusal(placement.error, _)
        if refund is not None:
            text += "\n" + notices.refund_line(refund, _)
        return text, None
    return notices.panel_refusal(placement.error, _), None


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(MayOrder())
    router.callback_query.filter(MayOrder(), PressedOn(), InCurrentFlow())
    router.errors.register(catalog_unavailable, ExceptionTypeFilter(CatalogUnavailable))

    router.message.register(start_order, Command("order"))
    router.message.register(start_order, MenuButton("order"))
    router.callback_query.register(new_order, NewOrder.filter())
    router.callback_query.register(categories_page, CategoriesPage.filter())
    router.callback_query.register(services_page, ServicesPage.filter())
    router.callback_query.register(start_search, SearchStart.filter())
    typed_words = (F.text, ~F.text.startswith("/"))
    router.message.register(search, OrderForm.searching, *typed_words)
    router.message.register(search, OrderForm.browsing, *typed_words)
    router.message.register(search_needs_text, OrderForm.searching, ~F.text)

    router.callback_query.register(pick_service, ServicePick.filter())
    router.callback_query.register(favourites_page, FavouritesPage.filter())
    router.callback_query.register(toggle_favourite, FavouriteToggle.filter())
    router.message.register(answer_step, OrderForm.answering, F.text, ~F.text.startswith("/"))
    router.message.register(answer_needs_text, OrderForm.answering, ~F.text)
    choices = {FormStep.SKIP, FormStep.YES, FormStep.DELAY}
    router.callback_query.register(
        choose_in_step, OrderForm.answering, FormAction.filter(F.action.in_(choices))
    )
    back = FormAction.filter(F.action == FormStep.BACK)
    router.callback_query.register(step_back, OrderForm.answering, back)
    router.callback_query.register(step_back, OrderForm.confirming, back)
    router.callback_query.register(cancel_form, FormAction.filter(F.action == FormStep.CANCEL))
    router.callback_query.register(
        change_answer, OrderForm.confirming, FormAction.filter(F.action == FormStep.CHANGE)
    )
    router.callback_query.register(order_again, OrderAction.filter(F.action == OrderStep.AGAIN))

    router.callback_query.register(drop_draft, DraftAction.filter(F.action == DraftStep.DROP))
    router.callback_query.register(
        confirm_draft, DraftAction.filter(F.action == DraftStep.CONFIRM), flags=PLACING
    )
    return router
