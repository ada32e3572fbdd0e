"""The ordering conversation: categories → services → the service's form → confirmation."""

from __future__ import annotations

from html import escape
from typing import Any, Final

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, ExceptionTypeFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Chat, ErrorEvent, Message, User
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.access import Access
from bot.catalog import Catalog, CatalogSnapshot
from bot.config import Settings
from bot.forms import DELAY_CHOICES, Field, FormError, next_field, steps_for, validate_field
from bot.money import format_money
from bot.ordering import Ordering, Outcome, Placement
from bot.panel.errors import PanelError, PanelUnavailable
from bot.panel.models import Service
from handlers import keyboards, texts
from handlers.approvals import approval_keyboard, approval_request
from handlers.callbacks import (
    CategoriesPage,
    DraftAction,
    FormAction,
    SearchStart,
    ServicePick,
    ServicesPage,
)
from handlers.filters import MayOrder, MenuButton, OthersMenu
from handlers.notices import tell_admins
from handlers.screens import ask, drop_buttons, replace
from handlers.states import OrderForm

router: Final[Router] = Router(name=__name__)
router.message.filter(MayOrder())
router.callback_query.filter(MayOrder())

SEARCH_LIMIT = 20


class CatalogUnavailable(Exception):
    """The panel's service list could not be loaded."""


async def _snapshot(catalog: Catalog) -> CatalogSnapshot:
    try:
        return await catalog.get()
    except (PanelError, PanelUnavailable) as error:
        raise CatalogUnavailable from error


@router.error(ExceptionTypeFilter(CatalogUnavailable))
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


def _opener(chat: Chat, user: User | None) -> int:
    """Whose menu it is: in groups the member who opened it; 0 (anyone) in a private chat."""
    return user.id if user is not None and chat.type != "private" else 0


@router.callback_query(~F.message.func(lambda message: isinstance(message, Message)))
async def message_too_old(query: CallbackQuery) -> None:
    """Telegram no longer shows us the pressed message (it is too old to edit)."""
    await query.answer(
        _("This message is too old to use. Send /order to start again."), show_alert=True
    )


@router.callback_query(OthersMenu())
async def not_your_menu(query: CallbackQuery) -> None:
    await query.answer(
        _("This menu belongs to someone else. Send /order to open your own."), show_alert=True
    )


async def _categories_screen(
    catalog: Catalog, settings: Settings, page: int, by: int
) -> tuple[str, Any]:
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
    return text, keyboards.categories(categories, keys, by)


@router.message(Command("order"))
@router.message(MenuButton("order"))
async def start_order(
    message: Message, state: FSMContext, catalog: Catalog, settings: Settings
) -> None:
    await state.clear()  # /order leaves any flow and starts over
    by = _opener(message.chat, message.from_user)
    text, markup = await _categories_screen(catalog, settings, 0, by)
    await message.answer(text, reply_markup=markup)


@router.callback_query(CategoriesPage.filter())
async def categories_page(
    query: CallbackQuery,
    callback_data: CategoriesPage,
    state: FSMContext,
    catalog: Catalog,
    settings: Settings,
) -> None:
    await query.answer()
    await state.clear()
    text, markup = await _categories_screen(
        catalog, settings, callback_data.page, callback_data.by
    )
    await replace(query, text, markup)


@router.callback_query(ServicesPage.filter())
async def services_page(
    query: CallbackQuery,
    callback_data: ServicesPage,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
    settings: Settings,
) -> None:
    snapshot = await _snapshot(catalog)
    category = snapshot.category_by_key(callback_data.category)
    if category is None:
        await query.answer(_("This category is no longer available."), show_alert=True)
        text, markup = await _categories_screen(catalog, settings, 0, callback_data.by)
        await replace(query, text, markup)
        return
    await query.answer()
    await state.clear()
    page = snapshot.services_page(category.key, callback_data.page, settings.page_size)
    text = _("<b>{category}</b>\nChoose a service:").format(category=escape(category.name))
    if page.pages > 1:
        text += " " + _("(page {page} of {pages})").format(page=page.page + 1, pages=page.pages)
    currency = await ordering.currency()
    markup = keyboards.services(page, category.key, currency, by=callback_data.by)
    await replace(query, text, markup)


@router.callback_query(SearchStart.filter())
async def start_search(
    query: CallbackQuery, callback_data: SearchStart, state: FSMContext
) -> None:
    await query.answer()
    await state.set_state(OrderForm.searching)
    assert isinstance(query.message, Message)
    await ask(
        query.message,
        query.from_user,
        _("Send a word or two to search for, like “instagram followers”."),
        keyboards.search_cancel(callback_data.by),
    )


@router.message(OrderForm.searching, F.text, ~F.text.startswith("/"))
async def search(message: Message, catalog: Catalog, ordering: Ordering) -> None:
    snapshot = await _snapshot(catalog)
    by = _opener(message.chat, message.from_user)
    query = (message.text or "").strip()[:100]
    found = snapshot.search(query, limit=SEARCH_LIMIT)
    if not found:
        await message.answer(
            _("Nothing found for “{query}”. Try other words.").format(query=escape(query)),
            reply_markup=keyboards.search_cancel(by),
        )
        return
    currency = await ordering.currency()
    await message.answer(
        _("Found {count}. Choose a service:").format(count=len(found)),
        reply_markup=keyboards.search_results(found, currency, by),
    )


@router.message(OrderForm.searching, ~F.text)
async def search_needs_text(message: Message) -> None:
    await message.answer(_("Please send the words to search for as text."))


# --- the form ----------------------------------------------------------------------------


@router.callback_query(ServicePick.filter())
async def pick_service(
    query: CallbackQuery,
    callback_data: ServicePick,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
) -> None:
    snapshot = await _snapshot(catalog)
    # The button carries the service id; a service the panel dropped is never swapped for another.
    service = snapshot.service(callback_data.service)
    if service is None:
        await query.answer(_("This service is no longer available."), show_alert=True)
        return
    await query.answer()
    await state.set_state(OrderForm.answering)
    await state.set_data({"service": service.id, "answers": {}})
    card = texts.service_card(service, await ordering.currency())
    field = next_field(service, {})
    assert field is not None  # every type asks at least one thing
    assert isinstance(query.message, Message)
    if query.message.chat.type == "private":
        await replace(
            query,
            f"{card}\n\n{texts.prompt(field.name, service)}",
            keyboards.form_step(field),
        )
    else:
        await replace(query, card)
        await ask(query.message, query.from_user, texts.prompt(field.name, service), None)
        await query.message.answer("⬇️", reply_markup=keyboards.form_step(field))


async def _form(state: FSMContext, catalog: Catalog) -> tuple[Service | None, dict[str, Any]]:
    data = await state.get_data()
    snapshot = await _snapshot(catalog)
    return snapshot.service(int(data.get("service", 0))), dict(data.get("answers") or {})


async def _service_gone(target: Message, state: FSMContext) -> None:
    await state.clear()
    await target.answer(_("This service is no longer available. Send /order to choose again."))


@router.message(OrderForm.answering, F.text, ~F.text.startswith("/"))
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
        text = texts.form_error(error) + "\n\n" + texts.prompt(field.name, service)
        await message.reply(text, reply_markup=keyboards.form_step(field))
        return
    answers[field.name] = value
    await _advance(message, state, ordering, service, answers)


@router.message(OrderForm.answering, ~F.text)
async def answer_needs_text(message: Message) -> None:
    await message.answer(_("Please answer with text, or use the buttons."))


Origin = Message | CallbackQuery  # what moved the form on: a typed answer or a button


async def _show(origin: Origin, text: str, markup: Any, *, typed: bool) -> None:
    """Show the next screen. A button in a private chat edits its own message in place;
    anything else gets a new message (a ForceReply question in groups when `typed`)."""
    if isinstance(origin, CallbackQuery):
        message = origin.message
        assert isinstance(message, Message)
        if message.chat.type == "private":
            await replace(origin, text, markup)
            return
        await drop_buttons(origin)
        user: User | None = origin.from_user
    else:
        message, user = origin, origin.from_user
    if typed:
        await ask(message, user, text, markup)
    else:
        await message.answer(text, reply_markup=markup)


async def _advance(
    origin: Origin,
    state: FSMContext,
    ordering: Ordering,
    service: Service,
    answers: dict[str, Any],
) -> None:
    """Store the answers and ask the next step, or show the summary when the form is full."""
    field = next_field(service, answers)
    if field is None:
        await _show_summary(origin, state, ordering, service, answers)
        return
    await state.set_state(OrderForm.answering)
    await state.update_data(answers=answers, order=None)
    markup = keyboards.form_step(field)
    await _show(origin, texts.prompt(field.name, service), markup, typed=True)


async def _show_summary(
    origin: Origin,
    state: FSMContext,
    ordering: Ordering,
    service: Service,
    answers: dict[str, Any],
) -> None:
    message = origin.message if isinstance(origin, CallbackQuery) else origin
    assert isinstance(message, Message)
    user_id = origin.from_user.id if origin.from_user else message.chat.id
    draft = await ordering.create_draft(message.chat.id, user_id, service, answers)
    await state.set_state(OrderForm.confirming)
    await state.update_data(answers=answers, order=draft.id)
    summary = texts.summary(draft, service, answers)
    await _show(origin, summary, keyboards.confirmation(draft.id), typed=False)


@router.callback_query(OrderForm.answering, FormAction.filter(F.action.in_({"skip", "yes"})))
@router.callback_query(OrderForm.answering, FormAction.filter(F.action == "delay"))
async def choose_in_step(
    query: CallbackQuery,
    callback_data: FormAction,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
) -> None:
    service, answers = await _form(state, catalog)
    assert isinstance(query.message, Message)
    if service is None:
        await query.answer()
        await _service_gone(query.message, state)
        return
    field = next_field(service, answers)
    value = _button_answer(field, callback_data)
    if field is None or value is _NO_ANSWER:
        await query.answer(_("This button is no longer active."))
        return
    await query.answer()
    answers[field.name] = value
    await _advance(query, state, ordering, service, answers)


_NO_ANSWER = object()


def _button_answer(field: Field | None, pressed: FormAction) -> object:
    """The answer a button gives to the current step, or _NO_ANSWER if it is not for it."""
    if field is None:
        return _NO_ANSWER
    if pressed.action == "skip" and field.optional:
        return None
    if pressed.action == "yes" and field.name == "dripfeed":
        return True
    if pressed.action == "delay" and field.name == "delay" and pressed.value in DELAY_CHOICES:
        return pressed.value
    return _NO_ANSWER


@router.callback_query(OrderForm.answering, FormAction.filter(F.action == "back"))
@router.callback_query(OrderForm.confirming, FormAction.filter(F.action == "back"))
async def step_back(
    query: CallbackQuery,
    state: FSMContext,
    catalog: Catalog,
    ordering: Ordering,
    settings: Settings,
) -> None:
    await query.answer()
    data = await state.get_data()
    if await state.get_state() == OrderForm.confirming and data.get("order"):
        assert query.message is not None
        await ordering.drop_draft(query.message.chat.id, query.from_user.id, int(data["order"]))
    service, answers = await _form(state, catalog)
    assert isinstance(query.message, Message)
    if service is None:
        await _service_gone(query.message, state)
        return
    answered = [field.name for field in steps_for(service) if field.name in answers]
    if not answered:
        await state.clear()
        snapshot = await _snapshot(catalog)
        key = snapshot.category_key(service.category)
        page = snapshot.services_page(key, 0, settings.page_size)
        text = _("<b>{category}</b>\nChoose a service:").format(category=escape(service.category))
        assert query.message is not None
        by = _opener(query.message.chat, query.from_user)
        markup = keyboards.services(page, key, await ordering.currency(), by=by)
        await replace(query, text, markup)
        return
    answers.pop(answered[-1])
    await _advance(query, state, ordering, service, answers)


@router.callback_query(FormAction.filter(F.action == "cancel"))
async def cancel_form(query: CallbackQuery, state: FSMContext, ordering: Ordering) -> None:
    await query.answer()
    data = await state.get_data()
    if data.get("order") and query.message is not None:
        await ordering.drop_draft(query.message.chat.id, query.from_user.id, int(data["order"]))
    await state.clear()
    await replace(query, _("Order cancelled. Send /order to start again."))


# --- confirmation ------------------------------------------------------------------------


@router.callback_query(DraftAction.filter(F.action == "drop"))
async def drop_draft(
    query: CallbackQuery, callback_data: DraftAction, state: FSMContext, ordering: Ordering
) -> None:
    await query.answer()
    assert query.message is not None
    if await ordering.drop_draft(query.message.chat.id, query.from_user.id, callback_data.order):
        await state.clear()
        await replace(query, _("Order cancelled. Send /order to start again."))
    else:
        await drop_buttons(query)


@router.callback_query(DraftAction.filter(F.action == "confirm"))
async def confirm_draft(
    query: CallbackQuery,
    callback_data: DraftAction,
    state: FSMContext,
    ordering: Ordering,
    access: Access,
    session: AsyncSession,
    settings: Settings,
) -> None:
    # Answer at once: `add` may take seconds, and Telegram shows a spinner until we answer.
    await query.answer(_("Placing your order…"))
    assert query.message is not None
    placement = await ordering.confirm(
        query.message.chat.id, query.from_user.id, callback_data.order, is_admin=access.is_admin
    )
    if placement.outcome in (Outcome.TAKEN, Outcome.GONE):
        await drop_buttons(query)
        return
    if placement.outcome != Outcome.UNAVAILABLE:
        await state.clear()
    # Admin notices are queued and committed first, so a failed screen edit cannot lose them.
    await _tell_admins_about(placement, session, settings, query.from_user)
    await session.commit()
    await replace(query, *_placement_screen(placement))


def _placement_screen(placement: Placement) -> tuple[str, Any]:
    order = placement.order
    assert order is not None
    if placement.outcome == Outcome.PLACED:
        return texts.placed_text(order), None
    if placement.outcome == Outcome.AWAITING_APPROVAL:
        return _(
            "This order needs an admin's approval before it is placed (it is over a spending "
            "limit). I will tell you what they decide."
        ), None
    if placement.outcome == Outcome.UNKNOWN:
        return texts.unknown_outcome_text(), None
    if placement.outcome == Outcome.CHANGED:
        return _(
            "This service changed on the panel since this summary was shown (its price or "
            "name), so nothing was ordered. Send /order to see it as it is now."
        ), None
    if placement.outcome == Outcome.UNAVAILABLE:
        return (
            _(
                "The panel is not answering right now, and nothing was ordered. "
                "Press Confirm again in a minute."
            ),
            keyboards.confirmation(order.id),
        )
    return texts.panel_refusal(placement.error), None


async def _tell_admins_about(
    placement: Placement, session: AsyncSession, settings: Settings, user: User
) -> None:
    order = placement.order
    if order is None:
        return
    if placement.outcome == Outcome.AWAITING_APPROVAL:
        await tell_admins(
            session, settings, lambda: approval_request(order, user), approval_keyboard(order.id)
        )
    elif placement.outcome == Outcome.UNKNOWN:
        await tell_admins(
            session,
            settings,
            lambda: _(
                "⚠️ Order ref. {ref} ({service}) may or may not have been placed: the "
                "panel did not answer. Check the panel and settle it with /unknown."
            ).format(ref=order.id, service=escape(order.service_name)),
        )
    elif (
        placement.outcome == Outcome.FAILED
        and texts.NOT_ENOUGH_FUNDS in (placement.error or "").casefold()
    ):
        await tell_admins(
            session,
            settings,
            lambda: _(
                "💸 An order of {price} was refused: not enough funds on the panel. "
                "Top up the balance."
            ).format(price=format_money(order.price, order.currency)),
        )
