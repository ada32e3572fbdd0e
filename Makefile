# One target per habit. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run playground test lint typecheck pytest migration migrate bench screenshot clean messages

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# With no BOT_TOKEN (environment or .env) this starts the offline playground.
run: install
	@if [ -n "$$BOT_TOKEN" ] || grep -qsE '^[[:space:]]*BOT_TOKEN[[:space:]]*=[[:space:]]*[^[:space:]#]' .env; then \
		$(BIN)/python -m bot run; \
	else \
		echo "No BOT_TOKEN configured: starting the offline playground (python -m bot playground)."; \
		$(BIN)/python -m bot playground; \
	fi

playground: install
	$(BIN)/python -m bot playground

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest -q

migrate: install
	$(BIN)/python -m bot migrate

# Usage: make migration m="add a column"
migration: install
	$(BIN)/alembic revision --autogenerate -m "$(m)"

bench: install
	$(BIN)/python -m bench

# Needs the system's Chromium (Debian: apt-get install chromium fonts-noto-color-emoji);
# never "playwright install": the browser comes from the distribution.
screenshot: install
	$(BIN)/python -m pytest -q tests/test_browser.py --screenshot-dir docs

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Refresh the translation catalog after changing user-facing text, then translate the new entries.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext -k __ --no-location --omit-header -o bot/locales/messages.pot .
	$(BIN)/pybabel update -i bot/locales/messages.pot -d bot/locales -D messages -l fil --no-fuzzy-matching --ignore-obsolete
