# fsedpc developer entry points. `make test` and `make demo` work from a fresh clone:
# they create .venv when missing and (re)install the project whenever pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := out/demo

.PHONY: all install test lit pytest demo results crosscheck clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# lit/FileCheck first, pytest last so that its summary is the final line; both on two workers.
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/lit --succinct tests/filecheck
	$(BIN)/pytest -n 2

lit: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/lit -v tests/filecheck

pytest: $(STAMP)
	$(BIN)/pytest -n 2

# The strategy comparison report: docs/results.md, docs/results/*.json and figures, from the sweep
# benchmarks/results.toml (1420 points, about 30 minutes on 2 cores). The sweep's store, out/results,
# is kept: an interrupted run resumes, and a changed fsedpc source runs every point again.
results: $(STAMP)
	rm -rf docs/results docs/results.md
	$(BIN)/fsedpc sweep benchmarks/results.toml -o out/results
	$(BIN)/python benchmarks/results.py --store out/results --out docs

# The cross-check figures: 50 random tiny-moe steps on 4 and 8 chiplets against CP-SAT, with the
# relaxations (about 12 minutes; the two systems run side by side on 2 cores).
# A work limit (CP-SAT deterministic time; 0.6 is about 5 s here) makes the JSON reproducible.
CROSSCHECK := examples/models/tiny-moe.mlir --random 50 --seed 1 --work-limit 0.6 --relaxed
crosscheck: $(STAMP)
	@mkdir -p docs/crosscheck
	$(BIN)/fsedpc crosscheck $(CROSSCHECK) --target paper-2x2 --json docs/crosscheck/paper-2x2.json > docs/crosscheck/paper-2x2.txt & \
	$(BIN)/fsedpc crosscheck $(CROSSCHECK) --target ring-8 --json docs/crosscheck/ring-8.json > docs/crosscheck/ring-8.txt; \
	status=$$?; wait $$! || status=1; tail -n 1 docs/crosscheck/*.txt; exit $$status

# The demo: import a real HF config, inspect it, make and study a trace, compile it for the
# FSE-DP paper's 2x2 system (static: per routed step; dynamic: routing-independent programs)
# and simulate both (the static run also checks every token against the numpy reference).
demo: $(STAMP)
	@mkdir -p $(DEMO)
	$(BIN)/fsedpc targets
	$(BIN)/fsedpc import-hf examples/hf/qwen3-30b-a3b.json --layers 2 -o $(DEMO)/qwen3-30b-a3b.mlir
	$(BIN)/fsedpc inspect $(DEMO)/qwen3-30b-a3b.mlir
	$(BIN)/fsedpc opt $(DEMO)/qwen3-30b-a3b.mlir -p 'attach-target{target=paper-2x2}' -o $(DEMO)/targeted.mlir
	@echo "--- $(DEMO)/targeted.mlir (first lines) ---"
	@head -c 1200 $(DEMO)/targeted.mlir; echo
	$(BIN)/fsedpc trace synth $(DEMO)/qwen3-30b-a3b.mlir --tokens 16 --steps 4 --chiplets 4 --skew zipf:0.8 --locality 0.3 --seed 1 -o $(DEMO)/trace.npz
	$(BIN)/fsedpc trace stats $(DEMO)/trace.npz
	$(BIN)/fsedpc compile $(DEMO)/qwen3-30b-a3b.mlir --target paper-2x2 --trace $(DEMO)/trace.npz -o $(DEMO)/static
	@echo "--- $(DEMO)/static/chiplet_0.fsa (first lines) ---"
	@head -n 24 $(DEMO)/static/chiplet_0.fsa
	$(BIN)/fsedpc simulate $(DEMO)/static --functional --metrics $(DEMO)/static/metrics.json --timeline $(DEMO)/timeline.json
	$(BIN)/fsedpc compile $(DEMO)/qwen3-30b-a3b.mlir --target paper-2x2 -o $(DEMO)/dynamic
	$(BIN)/fsedpc simulate $(DEMO)/dynamic --trace $(DEMO)/trace.npz --metrics $(DEMO)/dynamic/metrics.json
	$(BIN)/fsedpc bench $(DEMO)/qwen3-30b-a3b.mlir --target paper-2x2 --moe-layers 1 --no-dense --dtype int8 --tokens 16,64,256 --steps 2 --json $(DEMO)/bench.json --plot $(DEMO)/bench.png
	@echo "timeline: $(DEMO)/timeline.json (open it in https://ui.perfetto.dev); comparison figure: $(DEMO)/bench.png"

clean:
	rm -rf out .pytest_cache tests/filecheck/**/Output
