"""Who may do what. Team mode is closed by default, because every order spends the owner's
money; in reseller mode customers pay first, so anyone may order unless an admin denied them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings


@dataclass(frozen=True, slots=True)
class Access:
    user_id: int
    is_admin: bool
    may_order: bool


def decide_access(settings: Settings, user_id: int, stored: bool | None) -> Access:
    """Admins always; then a stored /deny or /allow; then ALLOWED_USER_IDS or OPEN_TO_ALL in
    team mode, anyone in reseller mode (BILLING=wallet)."""
    is_admin = settings.is_admin(user_id)
    if is_admin:
        may_order = True
    elif stored is not None:
        may_order = stored
    elif settings.wallet_mode:
        may_order = True
    else:
        may_order = settings.open_to_all or user_id in settings.allowed_user_ids
    return Access(user_id=user_id, is_admin=is_admin, may_order=may_order)
