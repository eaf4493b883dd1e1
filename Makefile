# Every target works from a fresh clone: the virtualenv at .venv is created when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TINY_MODEL := .cache/tiny-model

.PHONY: demo test test-long bench bench-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	# The pip bundled with Python 3.11 backtracks for many minutes on these pins.
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[worker,operator,dev]'
	touch $@

$(TINY_MODEL)/config.json: $(STAMP)
	$(BIN)/worker make-tiny-model $(TINY_MODEL)

DEMO_OUTPUT := .cache/demo_output.jsonl

# The bundled example through `worker run-batch` (the output file is shown), then the offline API.
demo: $(STAMP) $(TINY_MODEL)/config.json
	rm -f $(DEMO_OUTPUT)
	$(BIN)/worker run-batch -i examples/batch_input.jsonl -o $(DEMO_OUTPUT) --model $(TINY_MODEL) --max-model-len 512
	@echo "--- $(DEMO_OUTPUT)"
	@cat $(DEMO_OUTPUT)
	@echo "--- offline API (worker.LLM)"
	$(BIN)/python examples/offline_demo.py --model $(TINY_MODEL)

# The operator's tests run on a real control plane: KUBEBUILDER_ASSETS, else the binaries in
# ../shared/k8s unpacked by .ci/k8s-assets; without either they are skipped, saying so.
K8S_ASSETS = $${KUBEBUILDER_ASSETS:-$$([ -f ../shared/k8s/SHA256SUMS ] && .ci/k8s-assets)}

test: $(STAMP)
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" $(BIN)/python -m pytest -m "not slow"

test-long: $(STAMP)
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/worker bench

# Our engine beside vLLM (CPU build), llama.cpp and HF transformers, each installed into its own
# virtualenv under .cache/peers (the first run builds llama.cpp from source: ~10 min here).
bench-peers: $(STAMP)
	$(BIN)/python benchmarks/bench_peers.py $(ARGS)

clean:
	rm -rf $(VENV) .cache
