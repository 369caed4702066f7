# make test: install into .venv when needed, lint, run the whole suite.
# make demo: install when needed, start the emulator and the dashboard wired together.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint demo bench soak vectors clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e '.[test,bench]'
	@touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python bench/codec.py
	$(BIN)/python bench/sim_speed.py
	$(BIN)/python bench/clock_step.py
	$(BIN)/python bench/poll_rate.py
	$(BIN)/python bench/dashboard_tick.py
	$(BIN)/python bench/dashboard_pages.py
	$(BIN)/python bench/cohort.py

# docs/security.md R24: an hour of noise, disconnects, replay and forgery bursts (not part of test or bench),
# after 50 boluses through a noisy line with kill -9 restarts between replies and retries.
soak: $(STAMP)
	$(BIN)/python bench/bolus_restarts.py
	$(BIN)/python bench/soak.py

vectors: $(STAMP)
	$(BIN)/python -m protocols.vectors --write
	$(BIN)/python -m protocols.specgen --write

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
