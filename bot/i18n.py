"""Translations: gettext catalogs under bot/locales, compiled in memory when loaded.

English text is the message id, so English needs no catalog; `fil` (Filipino) has one. Loading the
`.po` source directly means a fresh clone needs no compile step and nothing binary is committed.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path

from aiogram.utils.i18n import I18n
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DOMAIN = "messages"
LANGUAGES = ("en", "fil")
# Telegram sends IETF tags; Filipino users may show up as "fil", "tl" or "tl-PH".
_ALIASES = {"tl": "fil", "fil": "fil", "en": "en"}


def language_of(telegram_code: str | None, default: str) -> str:
    """The bot language for a Telegram `language_code` (unknown ones fall back to `default`)."""
    if not telegram_code:
        return default
    return _ALIASES.get(telegram_code.split("-")[0].lower(), default)


def compile_catalog(po_path: Path) -> gettext.GNUTranslations:
    with po_path.open("rb") as source:
        catalog = read_po(source)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


class PoI18n(I18n):
    """aiogram's I18n, reading `.po` files instead of compiled `.mo` files."""

    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for folder in sorted(self.path.iterdir()):
            po_path = folder / "LC_MESSAGES" / f"{self.domain}.po"
            if po_path.exists():
                translations[folder.name] = compile_catalog(po_path)
        return translations


def create_i18n(default_language: str = "en") -> PoI18n:
    return PoI18n(path=LOCALES_DIR, default_locale=default_language, domain=DOMAIN)
