"""Telegram routers; `get_routers` builds them fresh, in the order they must be included."""

from __future__ import annotations

from aiogram import Router

from handlers import access, admin, approvals, common, fallback, ordering, orders, wallet


def get_routers() -> list[Router]:
    # Payments first (credited whatever the conversation's step), then the guards and the
    # commands that work in every state; the catch-all is last.
    factories = (common, admin, access, approvals, ordering, orders, wallet, fallback)
    return [wallet.create_payments_router(), *(module.create_router() for module in factories)]
