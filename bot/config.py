"""Settings of the bot, read from the environment and an optional `.env` file.

Every setting is documented in `.env.example`; a missing or malformed one stops start-up with one
line naming the variable (see `load_settings`).
"""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.billing import MAX_STARS_PER_INVOICE, invoice_accepts, stars_for

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/bot.db"
SANDBOX = "sandbox"

IdList = Annotated[list[int], NoDecode]
WordList = Annotated[list[str], NoDecode]
# Shop amounts (top-ups): above zero, whole cents.
ShopAmount = Annotated[Decimal, Field(gt=0, decimal_places=2)]
AmountList = Annotated[list[ShopAmount], NoDecode]
CURRENCY_PATTERN = r"^[A-Za-z0-9._-]{1,10}$"


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming the variable."""


class Settings(BaseSettings):
    """All settings; env names are the upper-case field names (`BOT_TOKEN`, `ADMIN_IDS`…)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    # Telegram
    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    # Panel (API v2). "sandbox" starts the built-in simulated panel.
    panel_api_url: str = "https://pica-smm.com/api2/v2"
    panel_api_key: SecretStr | None = None
    # An add may take twice this (bot.panel.client.add_deadline): 20 keeps a webhook answer
    # (which waits for the handler) well under Telegram's timeout.
    panel_timeout: float = Field(20.0, gt=0)
    panel_max_rps: float = Field(5.0, gt=0)
    # Storage
    database_url: str = DEFAULT_DATABASE_URL
    fsm_storage: str = "database"
    # Several instances: what they share beside the database (limits, cache invalidation).
    # Defaults to FSM_STORAGE when that is a redis:// URL; unset means one instance.
    redis_url: SecretStr | None = None
    # Updates handled at once; the database and Redis pools are sized to it by default.
    update_concurrency: int = Field(64, ge=1, le=10_000)
    db_pool_size: int | None = Field(None, ge=1)
    redis_pool_size: int | None = Field(None, ge=1)
    # Who may do what
    admin_ids: IdList = []
    allowed_user_ids: IdList = []
    open_to_all: bool = False
    notify_chat_ids: IdList = []
    # Polling of order statuses
    poll_interval: float = Field(60.0, gt=0)
    poll_aging: str = "6h=300,24h=900,72h=3600"
    notify_on: WordList = ["Completed", "Partial"]
    # Conversation
    default_language: Literal["en", "fil"] = "en"
    catalog_ttl: float = Field(600.0, gt=0)
    page_size: int = Field(8, ge=3, le=20)
    # Shown when the panel names no currency: a short plain token (it lands in HTML messages).
    currency: str = Field("USD", pattern=CURRENCY_PATTERN)
    # Money guards (off when unset)
    low_balance_alert: Decimal | None = None
    max_order_price: Decimal | None = None
    user_daily_limit: Decimal | None = None
    # Reseller mode (BILLING=wallet): customers pay from wallets at the shop's prices.
    billing: Literal["off", "wallet"] = "off"
    shop_currency: str | None = Field(None, pattern=CURRENCY_PATTERN)  # required with wallet
    exchange_rate: Decimal = Field(Decimal(1), gt=0)  # shop units per panel unit
    markup_percent: Decimal = Field(Decimal(0), ge=0)
    star_price: Decimal | None = Field(None, gt=0)  # one Star in the shop currency
    topup_amounts: AmountList = [Decimal(1), Decimal(5), Decimal(10), Decimal(25)]
    min_topup: ShopAmount | None = None  # the least typed "Other amount"
    support_contact: str | None = None  # /paysupport
    terms_text: str | None = None  # /terms
    # Delivery limits (Telegram's are ~30/s overall, 1/s per chat, 20/min per group)
    outbox_global_per_second: float = Field(30.0, gt=0)
    outbox_chat_interval: float = Field(1.0, ge=0)
    outbox_group_per_minute: float = Field(20.0, gt=0)
    # Leases on claimed work (seconds), renewed while it is worked on and released when done:
    # how long the messages and orders of an instance that died wait for another one.
    outbox_lease_seconds: float = Field(10.0, ge=2, le=600)
    poll_lease_seconds: float = Field(20.0, ge=2, le=3600)
    # Webhook mode (polling when WEBHOOK_URL is unset)
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8443
    # Prometheus metrics, /healthz and /readyz on this port, every interface (off when unset).
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # Offline playground
    playground_port: int = 8080
    log_level: str = "INFO"

    @field_validator("admin_ids", "allowed_user_ids", "notify_chat_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: Any) -> Any:
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            return [int(part) for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("notify_on", mode="before")
    @classmethod
    def _split_words(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("topup_amounts", mode="before")
    @classmethod
    def _split_amounts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("shop_currency")
    @classmethod
    def _currency_code(cls, value: str | None) -> str | None:
        return None if value is None else value.upper()

    @field_validator("poll_aging")
    @classmethod
    def _check_aging(cls, value: str) -> str:
        parse_poll_aging(value)
        return value

    @model_validator(mode="after")
    def _panel_key_required(self) -> Settings:
        if not self.uses_sandbox and self.panel_api_key is None:
            raise ValueError("PANEL_API_KEY is missing (or set PANEL_API_URL=sandbox)")
        return self

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        # Without it anyone could post forged updates (an "admin" sending /allow) to the hook.
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("WEBHOOK_SECRET is missing: it is required with WEBHOOK_URL")
        return self

    @model_validator(mode="after")
    def _metrics_port_free(self) -> Settings:
        if self.webhook_url and self.metrics_port == self.webhook_port:
            raise ValueError("METRICS_PORT must differ from WEBHOOK_PORT")
        return self

    @model_validator(mode="after")
    def _wallet_needs_a_currency(self) -> Settings:
        if self.billing == "wallet" and self.shop_currency is None:
            raise ValueError(
                "SHOP_CURRENCY is missing: BILLING=wallet needs the currency of the shop's "
                "prices and wallets (e.g. USD or PHP)"
            )
        return self

    @model_validator(mode="after")
    def _topups_fit_an_invoice(self) -> Settings:
        # A button Telegram would refuse to invoice is found at start-up, not by a customer.
        if self.billing != "wallet" or self.star_price is None:
            return self
        offered = [("TOPUP_AMOUNTS", amount) for amount in self.topup_amounts]
        if self.min_topup is not None:
            offered.append(("MIN_TOPUP", self.min_topup))
        for name, amount in offered:
            stars = stars_for(amount, self.star_price)
            if not invoice_accepts(stars):
                raise ValueError(
                    f"{name} has {amount}, which is {stars} Stars at STAR_PRICE "
                    f"{self.star_price}: one invoice takes 1…{MAX_STARS_PER_INVOICE} Stars"
                )
        return self

    @property
    def wallet_mode(self) -> bool:
        """Reseller mode: customers pay from their wallets (BILLING=wallet)."""
        return self.billing == "wallet"

    @property
    def shared_redis_url(self) -> str | None:
        """The Redis every instance shares: REDIS_URL, else a redis:// FSM_STORAGE, else None."""
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        if self.fsm_storage.startswith(("redis://", "rediss://")):
            return self.fsm_storage
        return None

    @property
    def database_pool_size(self) -> int:
        """Connections per instance: DB_POOL_SIZE, else enough for the updates in flight plus
        the poller and the outbox (capped: PostgreSQL's default max_connections is 100)."""
        return self.db_pool_size or min(self.update_concurrency + 4, 40)

    @property
    def shared_redis_pool_size(self) -> int:
        """Redis connections per instance: REDIS_POOL_SIZE, else one per update in flight plus
        the listeners and limiters."""
        return self.redis_pool_size or self.update_concurrency + 8

    @property
    def uses_sandbox(self) -> bool:
        return self.panel_api_url.strip().lower() == SANDBOX

    @cached_property
    def poll_aging_schedule(self) -> list[tuple[float, float]]:
        return parse_poll_aging(self.poll_aging)

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_poll_aging(value: str) -> list[tuple[float, float]]:
    """Parse `6h=300,24h=900`: (order age in seconds, poll interval in seconds), by age."""
    schedule: list[tuple[float, float]] = []
    for part in value.split(","):
        if not part.strip():
            continue
        age, _, interval = part.partition("=")
        age = age.strip().lower()
        unit = _UNITS.get(age[-1:])
        number = age[:-1] if unit else age
        try:
            schedule.append((float(number) * (unit or 1), float(interval)))
        except ValueError:
            raise ValueError(f"bad entry {part.strip()!r}, expected like 6h=300") from None
    return sorted(schedule)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = first.get("loc") or ()
    name = str(loc[0]).upper() if loc else ""
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "missing":
        return f"{name} is missing: set it in the environment or in .env (see .env.example)"
    if not name:
        return message
    return f"{name} is invalid: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning any validation error into a one-line `ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
