# fsedpc developer entry points. `make test` and `make demo` work from a fresh clone:
# they create .venv when missing and (re)install the project whenever pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := out/demo

.PHONY: all install test lit pytest fuzz demo results crosscheck clean

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

# The mutation fuzzer at scale (tests/fuzz.py; `make test` runs 336 of its cases): FSEDPC_FUZZ_CASES
# seeded malformed inputs (default 2000, about 4 minutes) of every format through the commands that
# read them; prints every finding and the counts (tracebacks, hangs, accepted-invalid, partial outputs).
FSEDPC_FUZZ_CASES ?= 2000
FSEDPC_FUZZ_SEED ?= 14
fuzz: $(STAMP)
	FSEDPC_FUZZ_CASES=$(FSEDPC_FUZZ_CASES) FSEDPC_FUZZ_SEED=$(FSEDPC_FUZZ_SEED) $(BIN)/python tests/fuzz.py

# The strategy comparison report: docs/results.md, docs/results/*.json and figures, from the sweep
# benchmarks/results.toml (1420 points, about 30 minutes on 2 cores). The sweep's store, out/results,
# is kept: an interrupted run resumes, and a changed fsedpc source runs every point again.
results: $(STAMP)
	rm -rf docs/results docs/results.md
	$(BIN)/fsedpc sweep benchmarks/results.toml -o out/results
	$(BIN)/python benchmarks/results.py --store out/results --out docs

# The cross-check figures: 50 random tiny-moe steps on 4 and 8 chiplets against CP-SAT, with the
# relaxations (the two systems run side by side on 2 cores), then the stressed instances: 4 real
# steps of Qwen3-30B-A3B on mesh-4x4 at 16 tokens (1,296 shards each, about 3 minutes a step),
# then torus-4x4's two virtual rings side by side: 30 random tiny-moe steps (B = 12: the second ring
# needs that much pool, schedbalance.rings_fit) and 4 real Qwen3 steps
# at 16 tokens, without the relaxations (the free model over both rings' paths is too large on 16
# chiplets). A work limit (CP-SAT deterministic time) makes the JSON reproducible.
CROSSCHECK := examples/models/tiny-moe.mlir --random 50 --seed 1 --work-limit 0.6 --relaxed
CROSSCHECK_STRESSED := examples/models/qwen3-30b-a3b.mlir --target mesh-4x4 --tokens 16 --steps 4 \
	--work-limit 0.5 --relaxed
CROSSCHECK_TORUS := examples/models/tiny-moe.mlir --target torus-4x4 --random 30 --seed 1 --work-limit 0.6 --buffers 12
CROSSCHECK_TORUS_STRESSED := examples/models/qwen3-30b-a3b.mlir --target torus-4x4 --tokens 16 --steps 4 \
	--work-limit 0.5
crosscheck: $(STAMP)
	@mkdir -p docs/crosscheck
	$(BIN)/fsedpc crosscheck $(CROSSCHECK) --target paper-2x2 --json docs/crosscheck/paper-2x2.json > docs/crosscheck/paper-2x2.txt & \
	$(BIN)/fsedpc crosscheck $(CROSSCHECK) --target ring-8 --json docs/crosscheck/ring-8.json > docs/crosscheck/ring-8.txt; \
	status=$$?; wait $$! || status=1; \
	$(BIN)/fsedpc crosscheck $(CROSSCHECK_STRESSED) --json docs/crosscheck/mesh-4x4-qwen3-30b-a3b.json \
		> docs/crosscheck/mesh-4x4-qwen3-30b-a3b.txt || status=1; \
	$(BIN)/fsedpc crosscheck $(CROSSCHECK_TORUS) --json docs/crosscheck/torus-4x4.json \
		> docs/crosscheck/torus-4x4.txt & \
	$(BIN)/fsedpc crosscheck $(CROSSCHECK_TORUS_STRESSED) --json docs/crosscheck/torus-4x4-qwen3-30b-a3b.json \
		> docs/crosscheck/torus-4x4-qwen3-30b-a3b.txt || status=1; \
	wait $$! || status=1; \
	tail -n 1 docs/crosscheck/*.txt; exit $$status

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
