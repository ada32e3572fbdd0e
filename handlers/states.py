"""Conversation states (stored in the database, so a half-filled order survives a restart)."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class OrderForm(StatesGroup):
    browsing = State()  # the catalog's menus are shown; typed text searches it
    searching = State()  # waiting for a search query
    answering = State()  # one step of the service's form; the step is in the FSM data
    confirming = State()  # the summary with Confirm / Cancel is shown


class Reconcile(StatesGroup):
    panel_order_id = State()  # waiting for the panel's id of an "unknown" order


class TopupForm(StatesGroup):
    amount = State()  # "Other amount": waiting for the amount to top up
