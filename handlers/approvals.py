"""Orders over a spending limit: the admins approve or reject; the first decision wins.

`Ordering.decide` writes the customer's message together with the decision; this router only
shows the admin what happened.
"""

from __future__ import annotations

from html import escape

from aiogram import Router
from aiogram.types import CallbackQuery, User
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from bot import notices
from bot.ordering import Ordering, Outcome, Placement
from handlers import keyboards
from handlers.callbacks import Approval
from handlers.filters import IsAdmin, PressedOn
from handlers.screens import replace

# Approving calls the panel: answer the press at once, so no spinner runs through `add`.
WORKING = {"callback_answer": {"pre": True, "text": __("Working on it…")}}


async def decide(query: CallbackQuery, callback_data: Approval, ordering: Ordering) -> None:
    placement = await ordering.decide(
        callback_data.order, query.from_user.id, approve=callback_data.approve
    )
    order = placement.order
    if order is None:
        await replace(query, _("This order no longer exists."))
        return
    if placement.outcome == Outcome.TAKEN:
        state = notices.state_label(order, _)
        await replace(query, _("Already decided: {state}.").format(state=state))
        return
    # Nothing happened when the panel was unreachable: the decision stays open, with its buttons.
    markup = keyboards.approval(order.id, _) if placement.outcome == Outcome.UNAVAILABLE else None
    await replace(query, _decision_screen(placement, query.from_user), markup)


def _decision_screen(placement: Placement, admin: User) -> str:
    order = placement.order
    if order is None:
        return _("This order no longer exists.")
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
    if placement.outcome == Outcome.CHANGED:
        return _(
            "The service changed on the panel since this order was requested (its price, type "
            "or name), so nothing was ordered. The customer has been told."
        )
    if placement.outcome == Outcome.UNKNOWN:
        return _("Approved by {admin}, but the panel did not confirm it: see /unknown.").format(
            admin=who
        )
    return _("Approved by {admin}, but not placed: {reason}").format(
        admin=who, reason=notices.panel_refusal(placement.error, _)
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.filter(IsAdmin(), PressedOn())
    router.callback_query.register(decide, Approval.filter(), flags=WORKING)
    return router
