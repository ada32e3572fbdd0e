"""Who may do what: closed by default, because every order spends the owner's money."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings


@dataclass(frozen=True, slots=True)
class Access:
    user_id: int
    is_admin: bool
    may_order: bool


def decide_access(settings: Settings, user_id: int, stored: bool | None) -> Access:
    """Admins always; then a stored /deny or /allow; then ALLOWED_USER_IDS or OPEN_TO_ALL."""
    is_admin = settings.is_admin(user_id)
    if is_admin:
        may_order = True
    elif stored is not None:
        may_order = stored
    else:
        may_order = settings.open_to_all or user_id in settings.allowed_user_ids
    return Access(user_id=user_id, is_admin=is_admin, may_order=may_order)
