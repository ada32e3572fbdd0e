"""Orders over a spending limit: the admins approve or reject; the first decision wins."""

from __future__ import annotations

from html import escape
from typing import Final

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, User
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.money import format_money
from bot.ordering import Ordering, Outcome, Placement
from handlers import texts
from handlers.callbacks import Approval
from handlers.filters import IsAdmin
from handlers.screens import replace
from storage import outbox
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
    await replace(query, _admin_result(placement, query.from_user))
    await outbox.enqueue(session, order.chat_id, _customer_result(placement), kind="approval")


def _admin_result(placement: Placement, admin: User) -> str:
    order = placement.order
    assert order is not None
    who = escape(admin.full_name)
    if placement.outcome == Outcome.PLACED:
        return _("Approved by {admin}: placed as order #{id}.").format(
            admin=who, id=order.panel_order_id
        )
    if placement.error == "rejected":
        return _("Rejected by {admin}.").format(admin=who)
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
    if placement.error == "rejected":
        return _("An admin did not approve your order of {service}. Nothing was charged.").format(
            service=escape(order.service_name)
        )
    if placement.outcome == Outcome.UNKNOWN:
        return texts.unknown_outcome_text()
    return texts.panel_refusal(placement.error)
