"""Translations: gettext catalogs under bot/locales, compiled when the bot starts.

English text is the message id, so English needs no catalog; `fil` (Filipino) has one. The `.po`
sources are compiled into a temporary folder at start-up and loaded by aiogram's own `I18n`, so a
fresh clone needs no compile step and nothing binary is committed.
"""

from __future__ import annotations

import tempfile
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


def resolve_language(chosen: str | None, telegram_code: str | None, default: str) -> str:
    """The one rule for whom we write in which language: a choice made with /language (the
    person's, else the chat's), then the person's Telegram client language, then the default."""
    if chosen is not None and chosen in LANGUAGES:
        return chosen
    return language_of(telegram_code, default)


def compile_catalogs(source: Path, target: Path) -> None:
    """Compile every `<lang>/LC_MESSAGES/messages.po` under `source` into `target`."""
    for po_path in sorted(source.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        language = po_path.parent.parent.name
        mo_path = target / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=None)
        with mo_path.open("wb") as mo_file:
            write_mo(mo_file, catalog)


def create_i18n(default_language: str = "en") -> I18n:
    with tempfile.TemporaryDirectory(prefix="smm-bot-locales-") as folder:
        compile_catalogs(LOCALES_DIR, Path(folder))
        # I18n reads the compiled catalogs into memory here; the folder can go afterwards.
        return I18n(path=folder, default_locale=default_language, domain=DOMAIN)
