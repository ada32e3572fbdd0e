# One target per habit. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: install lock lock-upgrade run playground test lint typecheck pytest migration migrate bench screenshot clean messages

install: $(STAMP)

# Exactly the versions and hashes in the lock (runtime, every extra, pip, setuptools), then the
# project itself without its dependencies. The lock's pip goes first: the one a new venv brings
# is older and much slower at this. No build isolation: the build backend comes from the lock
# too, so nothing unpinned is downloaded. `make clean install` also drops what the lock lost.
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/lock.py --extract pip > $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# After changing dependencies in pyproject.toml: re-resolve, keeping every pin that still fits.
lock: install
	$(BIN)/python tools/lock.py
	@$(MAKE) --no-print-directory --silent install

# Move every pin to the newest version that pyproject.toml allows.
lock-upgrade: install
	$(BIN)/python tools/lock.py --upgrade
	@$(MAKE) --no-print-directory --silent install

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
	@$(BIN)/python tools/lock.py --check
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

# Before (a git worktree of the issue's starting commit, in .bench/) and after, side by side;
# rewrites bench/RESULTS.md. `make bench ONLY=burst` runs one benchmark and prints its report.
# The PostgreSQL and burst rows need TEST_DATABASE_URL and TEST_REDIS_URL (bench/backends.py).
bench: install
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY))

# Needs the system's Chromium (Debian: apt-get install chromium fonts-noto-color-emoji);
# never "playwright install": the browser comes from the distribution. The wallet test adds
# docs/wallet.png and docs/refund.png (reseller mode).
screenshot: install
	$(BIN)/python -m pytest -q tests/test_browser.py tests/test_browser_wallet.py --screenshot-dir docs

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Refresh the translation catalog after changing user-facing text, then translate the new entries.
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k _ -k gettext -k __ --no-location --omit-header -o bot/locales/messages.pot .
	$(BIN)/pybabel update -i bot/locales/messages.pot -d bot/locales -D messages -l fil --no-fuzzy-matching --ignore-obsolete
