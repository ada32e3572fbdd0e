"""Orders over a spending limit: the admins approve or reject; the first decision wins."""

from __future__ import annotations

from html import escape
from typing import Final

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.i18n import language_of
from bot.money import format_money
from bot.ordering import Ordering, Outcome, Placement
from handlers import texts
from handlers.callbacks import Approval
from handlers.filters import IsAdmin
from handlers.screens import replace
from storage import outbox, people
from storage.models import Order

router: Final[Router] = Router(name=__name__)
router.callback_query.filter(IsAdmin())


def approval_keyboard(order_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✅ Approve"),
                    callback_data=Approval(approve=True, order=order_id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("✖️ Reject"),
                    callback_data=Approval(approve=False, order=order_id).pack(),
                ),
            ]
        ]
    )


def approval_request(order: Order, user: User) -> str:
    lines = [
        _("🧾 An order waits for your approval (over a spending limit)."),
        _("From: {user} (id {id})").format(user=user.mention_html(), id=user.id),
        *texts.order_details(order),
        _("Price: {price}").format(price=format_money(order.price, order.currency)),
    ]
    return "\n".join(lines)


@router.callback_query(Approval.filter())
async def decide(
    query: CallbackQuery,
    callback_data: Approval,
    ordering: Ordering,
    session: AsyncSession,
    settings: Settings,
    i18n: I18n,
) -> None:
    await query.answer(_("Working on it…"))
    placement = await ordering.decide(
        callback_data.order, query.from_user.id, approve=callback_data.approve
    )
    order = placement.order
    if order is None:
        await replace(query, _("This order no longer exists."))
        return
    if placement.outcome == Outcome.TAKEN:
        await replace(query, _("Already decided: {state}.").format(state=texts.state_label(order)))
        return
    if placement.outcome == Outcome.UNAVAILABLE:
        # Nothing happened: the decision is still open, with its buttons.
        await replace(
            query, _admin_result(placement, query.from_user), approval_keyboard(order.id)
        )
        return
    # The customer's message is queued and committed before the admin's screen changes, so a
    # failed edit cannot lose it.
    with i18n.use_locale(await _language_of(session, order.user_id, settings)):
        told = _customer_result(placement)
    await outbox.enqueue(session, order.chat_id, told, kind="approval")
    await session.commit()
    await replace(query, _admin_result(placement, query.from_user))


async def _language_of(session: AsyncSession, user_id: int, settings: Settings) -> str:
    user = await people.get_user(session, user_id)
    if user is None:
        return settings.default_language
    return user.language or language_of(user.telegram_language, settings.default_language)


def _admin_result(placement: Placement, admin: User) -> str:
    order = placement.order
    assert order is not None
    who = escape(admin.full_name)
    if placement.outcome == Outcome.PLACED:
        return _("Approved by {admin}: placed as order #{id}.").format(
            admin=who, id=order.panel_order_id
        )
    if placement.outcome == Outcome.REJECTED:
        return _("Rejected by {admin}.").format(admin=who)
    if placement.outcome == Outcome.UNAVAILABLE:
        return _(
            "The panel is not answering right now, so nothing was ordered; the order still "
            "waits for approval. Try again in a minute."
        )
    if placement.outcome == Outcome.UNKNOWN:
        return _("Approved by {admin}, but the panel did not confirm it: see /unknown.").format(
            admin=who
        )
    return _("Approved by {admin}, but not placed: {reason}").format(
        admin=who, reason=texts.panel_refusal(placement.error)
    )


def _customer_result(placement: Placement) -> str:
    order = placement.order
    assert order is not None
    if placement.outcome == Outcome.PLACED:
        return texts.placed_text(order)
    if placement.outcome == Outcome.REJECTED:
        return _("An admin did not approve your order of {service}. Nothing was charged.").format(
            service=escape(order.service_name)
        )
    if placement.outcome == Outcome.UNKNOWN:
        return texts.unknown_outcome_text()
    return texts.panel_refusal(placement.error)
