# `make run` starts the app on the demo corpus; `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: run test test-all index install browser clean bench

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

index: $(STAMP)
	$(VENV)/bin/aidsearch index

run: $(STAMP)
	$(PY) app.py

test: $(STAMP) browser
	$(PY) -m pytest -m "not full" -q

test-all: $(STAMP) browser
	$(PY) -m pytest -q

# About an hour on 2 cores; run it on an otherwise idle machine. Writes docs/benchmarks/* and docs/BENCHMARKS.md.
QUALITY_ARGS ?= --chunking 120/24,300/60
bench: $(STAMP)
	$(PY) benchmarks/bench_model.py > /dev/null
	$(PY) benchmarks/bench_quality.py $(QUALITY_ARGS)
	$(PY) benchmarks/bench_scale.py > /dev/null
	$(PY) benchmarks/report.py

clean:
	rm -rf $(VENV) index/*.faiss index/*.json index/*.sqlite
