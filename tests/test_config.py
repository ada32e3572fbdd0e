"""Settings: id lists, defaults, and one clear line for a bad or missing variable."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings, parse_poll_aging
from storage.db import sqlite_path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("BOT_TOKEN", "PANEL_API_URL", "PANEL_API_KEY", "ADMIN_IDS", "NOTIFY_CHAT_IDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))  # no stray .env


def test_id_lists_accept_commas_single_negative_and_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "1:x")
    monkeypatch.setenv("PANEL_API_URL", "sandbox")
    monkeypatch.setenv("ADMIN_IDS", "1, 2")
    monkeypatch.setenv("ALLOWED_USER_IDS", "42")
    monkeypatch.setenv("NOTIFY_CHAT_IDS", "-100777")
    settings = load_settings()
    assert settings.admin_ids == [1, 2]
    assert settings.allowed_user_ids == [42]
    assert settings.notify_chat_ids == [-100777]
    monkeypatch.setenv("ADMIN_IDS", "")
    assert load_settings().admin_ids == []


def test_defaults() -> None:
    settings = load_settings(bot_token="1:bot-secret", panel_api_key="panel-secret-key")
    assert settings.panel_api_url == "https://pica-smm.com/api2/v2"
    assert settings.database_url == "sqlite+aiosqlite:///data/bot.db"
    assert settings.poll_interval == 60.0
    assert settings.open_to_all is False
    assert settings.default_language == "en"
    assert "panel-secret-key" not in repr(settings)
    assert "bot-secret" not in repr(settings)


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(panel_api_key="k")
    assert "BOT_TOKEN" in str(error.value)
    assert "\n" not in str(error.value)


def test_malformed_id_list_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "1:x")
    monkeypatch.setenv("PANEL_API_KEY", "k")
    monkeypatch.setenv("ADMIN_IDS", "12,abc")
    with pytest.raises(ConfigError, match="ADMIN_IDS"):
        load_settings()


def test_panel_key_required_unless_sandbox() -> None:
    with pytest.raises(ConfigError, match="PANEL_API_KEY"):
        load_settings(bot_token="1:x")
    assert load_settings(bot_token="1:x", panel_api_url="sandbox").uses_sandbox


def test_poll_aging_schedule() -> None:
    assert parse_poll_aging("24h=900,6h=300") == [(21600.0, 300.0), (86400.0, 900.0)]
    with pytest.raises(ConfigError, match="POLL_AGING"):
        load_settings(bot_token="1:x", panel_api_key="k", poll_aging="soon=3")


def test_sqlite_path() -> None:
    assert str(sqlite_path("sqlite+aiosqlite:///data/bot.db")) == "data/bot.db"
    assert sqlite_path("postgresql+asyncpg://x/y") is None


def test_webhook_requires_a_secret() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        load_settings(bot_token="1:x", panel_api_url="sandbox", webhook_url="https://b.example")
    settings = load_settings(
        bot_token="1:x",
        panel_api_url="sandbox",
        webhook_url="https://b.example",
        webhook_secret="s",
    )
    assert settings.webhook_secret is not None
