# lcodec: `make demo` and `make test` set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
# A full-size photograph shipped with the checkout (2048×1152, CC0: tests/data/colosseum.txt).
DEMO_IMAGE ?= tests/data/colosseum.jpg
DEMO_BPP ?= 0.25
# The correction layer's search costs minutes on a 2-megapixel photo on 2 cores; the demo shows the
# networks' file (DEMO_OPTS= for the default encoder).
DEMO_OPTS ?= --no-correction
OUT := out

.PHONY: setup demo test lint bench eval fuzz clean

setup: $(STAMP)

# torch is pinned to the local CPU build first, so pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev,train,eval,cluster]'
	touch $(STAMP)

# Encode, decode, then lcodec beside JPEG, WebP, AVIF and JPEG XL at the same file size
# (scripts/demo_compare.py), and a side-by-side detail in out/demo-compare.png.
demo: $(STAMP)
	@mkdir -p $(OUT)
	@echo "Encoding $(DEMO_IMAGE) at $(DEMO_BPP) bpp $(DEMO_OPTS) (a minute or more on 2 CPU cores)"
	$(BIN)/lcodec encode $(DEMO_IMAGE) $(OUT)/demo.lic --bpp $(DEMO_BPP) $(DEMO_OPTS) --force
	$(BIN)/lcodec decode $(OUT)/demo.lic $(OUT)/demo.png --force -v
	$(BIN)/lcodec info $(OUT)/demo.lic
	$(BIN)/python scripts/demo_compare.py $(DEMO_IMAGE) $(OUT)/demo.lic $(OUT)/demo.png \
		--picture $(OUT)/demo-compare.png

# One pytest-xdist worker per core (TEST_WORKERS=0: one process); a test file stays on one
# worker, so its module fixtures (a Ray runtime, a built wheel) are made once.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts

bench: $(STAMP)
	$(BIN)/python -m lcodec.evaluate.bench ../shared/data/kodak

eval: $(STAMP)
	$(BIN)/lcodec eval ../shared/data/kodak --out $(OUT)/eval-kodak -j 2 --crops --force

fuzz: $(STAMP)
	$(BIN)/python tests/fuzzing.py --cases 10000
	$(BIN)/python tests/fuzzing.py --cases 10000 --structured

clean:
	rm -rf $(OUT) .pytest_cache .ruff_cache
