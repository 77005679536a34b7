# Two commands do all set-up on a fresh machine with Python 3.11: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-slow bench browser lock clean

$(PY):
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)

# torch first and alone (a CPU build on these machines), then the pinned lock, then the project.
$(STAMP): $(PY) requirements.lock pyproject.toml
	$(PIP) install --quiet --disable-pip-version-check torch==2.13.0
	$(PIP) install --quiet --disable-pip-version-check -r requirements.lock
	$(PIP) install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/crysreas demo

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

bench: install
	$(PY) bench/run_all.py

# Headless Chromium (Debian's package) for the slow UI screenshot test: make browser test-slow
browser:
	command -v chromium >/dev/null || { $$(command -v sudo) apt-get update -qq && $$(command -v sudo) apt-get install -y -qq chromium; }

# Re-pin after changing requirements.in (run inside an up-to-date venv).
lock: $(PY)
	$(PIP) install --quiet torch==2.13.0 -r requirements.in
	{ echo "# Full pinned environment (pip freeze on Python 3.11, Linux x86_64). torch==2.13.0 is installed"; \
	  echo "# first and separately by the Makefile; regenerate with 'make lock'."; \
	  $(PIP) freeze --exclude-editable | grep -viE "^(torch|crystalreasoner)[= ]"; } > requirements.lock

clean:
	rm -rf $(VENV) .crysreas
