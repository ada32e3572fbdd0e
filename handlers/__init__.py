"""Telegram routers; `get_routers` builds them fresh, in the order they must be included."""

from __future__ import annotations

from aiogram import Router

from handlers import access, admin, approvals, common, fallback, ordering, orders


def get_routers() -> list[Router]:
    # The guards and the commands that work in every state come first; the catch-all is last.
    factories = (common, admin, access, approvals, ordering, orders, fallback)
    return [module.create_router() for module in factories]
