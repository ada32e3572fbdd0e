"""The SMM panel API v2 layer: async client, typed models (Decimal money), errors.

Depends on nothing else of the project. The simulated panel for tests and the playground is
``playground.sandbox``, outside the product package.
"""

from bot.panel.client import PanelClient
from bot.panel.errors import OrderOutcomeUnknown, PanelError, PanelUnavailable
from bot.panel.models import (
    MAX_CURRENCY_LENGTH,
    MAX_STATUS_LENGTH,
    ORDER_TERMINAL,
    REFILL_TERMINAL,
    Balance,
    CancelResult,
    OrderStatus,
    OrderStatusResult,
    RefillResult,
    RefillStatus,
    RefillStatusResult,
    Service,
    decode_json,
    is_terminal_order_status,
    is_terminal_refill_status,
    parse_order_status,
    parse_refill_status,
)

__all__ = [
    "MAX_CURRENCY_LENGTH",
    "MAX_STATUS_LENGTH",
    "ORDER_TERMINAL",
    "REFILL_TERMINAL",
    "Balance",
    "CancelResult",
    "OrderOutcomeUnknown",
    "OrderStatus",
    "OrderStatusResult",
    "PanelClient",
    "PanelError",
    "PanelUnavailable",
    "RefillResult",
    "RefillStatus",
    "RefillStatusResult",
    "Service",
    "decode_json",
    "is_terminal_order_status",
    "is_terminal_refill_status",
    "parse_order_status",
    "parse_refill_status",
]
