"""Where a burst can queue, as configured in a measured run: read from the run's Settings."""

from __future__ import annotations

from typing import Any

# Settings attributes (fields or properties) naming each queue; the first one present is used,
# so a codebase that names one differently or lacks it shows "not configurable" instead.
QUEUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dispatcher concurrency (UPDATE_CONCURRENCY)", ("update_concurrency",)),
    ("database pool per instance", ("database_pool_size", "db_pool_size")),
    ("Redis pool per instance", ("shared_redis_pool_size", "redis_pool_size")),
    ("panel client's semaphore", ("panel_concurrency", "panel_max_concurrency")),
    ("panel rate limit (PANEL_MAX_RPS)", ("panel_max_rps",)),
)
PANEL_CLIENT_DEFAULT = "max_concurrency"  # PanelClient's keyword, when Settings has no field


def sizing(settings: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for label, names in QUEUES:
        for name in names:
            value = getattr(settings, name, None)
            if value is not None:
                found[label] = f"{value:g}" if isinstance(value, float) else str(value)
                break
        else:
            found[label] = _panel_default() if "semaphore" in label else "not configurable"
    return found


def _panel_default() -> str:
    """PanelClient's own default, when no setting sizes its semaphore."""
    import inspect

    from bot.panel.client import PanelClient

    parameter = inspect.signature(PanelClient).parameters.get(PANEL_CLIENT_DEFAULT)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return "unknown"
    return f"{parameter.default} (PanelClient's default; no setting)"
