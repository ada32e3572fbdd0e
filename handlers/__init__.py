"""Telegram routers; `get_routers` gives them in the order they must be included."""

from __future__ import annotations

from aiogram import Router

from handlers import common, fallback


def get_routers() -> list[Router]:
    # Commands that work in every state come first; the catch-all is last.
    return [common.router, fallback.router]
