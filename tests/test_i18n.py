"""Every user-facing message has a Filipino translation with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, create_i18n, language_of

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{\w*\}")
TAG = re.compile(r"</?[a-z]+[^>]*>")


def source_messages() -> set[str]:
    found: set[str] = set()
    for folder in ("bot", "handlers"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, keywords={"_": None, "gettext": None, "__": None}
        ):
            if isinstance(message, str) and message:
                found.add(message)
    return found


def filipino() -> dict[str, str]:
    with (LOCALES_DIR / "fil" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source)
    return {str(m.id): str(m.string) for m in catalog if m.id and not m.fuzzy}


def test_every_message_has_a_filipino_translation() -> None:
    translations = filipino()
    missing = sorted(m for m in source_messages() if not translations.get(m))
    assert not missing, f"untranslated (run `make messages` and translate): {missing}"


def test_translations_keep_placeholders_and_tags() -> None:
    for source, translated in filipino().items():
        assert sorted(PLACEHOLDER.findall(source)) == sorted(PLACEHOLDER.findall(translated)), (
            source
        )
        assert sorted(TAG.findall(source)) == sorted(TAG.findall(translated)), source


def test_catalog_loads_and_translates() -> None:
    i18n = create_i18n("en")
    assert i18n.gettext("Hello, {name}!", locale="fil") == "Kumusta, {name}!"
    assert i18n.gettext("Hello, {name}!", locale="en") == "Hello, {name}!"


def test_telegram_language_codes() -> None:
    assert language_of("tl", "en") == "fil"
    assert language_of("fil", "en") == "fil"
    assert language_of("en-US", "fil") == "en"
    assert language_of("de", "en") == "en"
    assert language_of(None, "fil") == "fil"
