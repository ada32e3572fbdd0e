"""Logging set-up shared by the bot, the playground and the tests: no secret reaches a log line.

`RedactSecrets` is a `logging.Filter` for handlers. It replaces every secret it was given (the
bot token and its secret half, the panel key, the passwords of DATABASE_URL and FSM_STORAGE) and
any `user:password@` inside a URL with `***`, in the formatted message (so in `args` too), in the
exception text (the traceback of `exc_info`, and the messages of its chained exceptions) and in
`stack_info`. A handler-level filter sees the records of every logger that propagates to it,
which a filter on the root logger would not; `install_redaction` puts it on the root handlers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

from pydantic import SecretStr

from bot.config import Settings

MASK = "***"
MIN_SECRET_LENGTH = 4  # a shorter "secret" would mask ordinary words: such values are skipped
# The password of any URL with credentials (scheme://user:password@host), known or not.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^\s:/@]*:)(?P<password>[^\s/@]+)(?=@)")
_FORMATTER = logging.Formatter()


def url_password(url: str | None) -> str | None:
    """The password in `url` (user:password@host), or None."""
    if not url:
        return None
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def secrets_of(settings: Settings) -> list[str]:
    """Everything of `settings` that must never be logged."""
    values: list[str | None] = [
        _reveal(settings.bot_token),
        _reveal(settings.panel_api_key),
        _reveal(settings.webhook_secret),
        url_password(settings.database_url),
        url_password(settings.fsm_storage),
    ]
    token = _reveal(settings.bot_token)
    if token and ":" in token:
        values.append(token.split(":", 1)[1])  # the secret half, however the colon is escaped
    return [value for value in values if value]


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


class RedactSecrets(logging.Filter):
    """Masks the given secrets in every record that passes through it; never drops a record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too (with their URL-encoded and decoded forms)."""
        found = set(self._secrets)
        for secret in secrets:
            for form in (secret, quote(secret, safe=""), unquote(secret)):
                if len(form) >= MIN_SECRET_LENGTH:
                    found.add(form)
        self._secrets = sorted(found, key=len, reverse=True)  # a longer one first

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _URL_PASSWORD.sub(lambda match: match.group("head") + MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # malformed args: keep what can be shown, masked
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            redacted = self.redact(record.exc_text)
            if redacted != record.exc_text:
                # Formatters print `exc_text` when it is set; the exception object itself
                # still holds the secret, so no handler gets it to format again.
                record.exc_info = None
            record.exc_text = redacted
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(
    secrets: Iterable[str], handlers: Iterable[logging.Handler] | None = None
) -> RedactSecrets:
    """Put one `RedactSecrets` on `handlers` (the root logger's by default), once each."""
    chosen = list(logging.getLogger().handlers if handlers is None else handlers)
    existing = [
        flt for handler in chosen for flt in handler.filters if isinstance(flt, RedactSecrets)
    ]
    redaction = existing[0] if existing else RedactSecrets()
    redaction.add(secrets)
    for handler in chosen:
        if redaction not in handler.filters:
            handler.addFilter(redaction)
    return redaction


def configure_logging(level: str, secrets: Iterable[str] = ()) -> RedactSecrets:
    """The bot's logging: one stderr handler at `level`, secrets masked."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiohttp's access log and aiogram's per-update lines are noise at INFO, and so is
    # Alembic's list of its plugins, logged when it is imported.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return install_redaction(secrets)
