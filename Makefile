# Encore: `make demo` runs the main job, `make test` the whole suite. Both create .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell for p in python3.11 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: venv test demo bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	@if [ -z "$(PYTHON)" ]; then \
		echo "Encore needs Python 3.10 or 3.11: dm-reverb 0.14.0 and tensorflow 2.15.1 publish wheels up to 3.11, and gymnasium 1.3 (Taxi-v4) needs 3.10. Install one (e.g. pyenv install 3.11) or pass PYTHON=/path/to/python3.11."; \
		exit 1; fi
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; ok = (3, 10) <= v <= (3, 11); \
		ok or print(f"Python {v[0]}.{v[1]} is not supported: Encore needs 3.10-3.11 (dm-reverb 0.14.0 / tensorflow 2.15.1 wheels, gymnasium 1.3)."); sys.exit(not ok)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,ray]'
	touch $@

test: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest tests -q

demo: venv
	$(PY) -m agents.run --agent dqn --env CartPole-v1 --launch_type local_mp --num_actors 2

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

bench: venv $(VENV)/.bench-installed
	@mkdir -p benchmarks/results
	@# time_to_solve.py is the generic tool the agents' benchmarks (dqn_cartpole.py, ...) call with their settings.
	@for b in $$(ls benchmarks/*.py | grep -v time_to_solve); do n=$$(basename $$b .py); echo "== $$n"; \
		$(PY) $$b --json benchmarks/results/$$n.json || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
