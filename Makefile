# lcodec: `make demo` and `make test` set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
# A Kodak image beside the checkout where there is one, else the crop shipped in tests/data.
DEMO_IMAGE ?= $(firstword $(wildcard ../shared/data/kodak/kodim23.png) tests/data/kodim23_crop.png)
DEMO_BPP ?= 0.25
OUT := out

.PHONY: setup demo test lint bench eval fuzz clean

setup: $(STAMP)

# torch is pinned to the local CPU build first, so pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev,train,eval]'
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(OUT)
	$(BIN)/lcodec encode $(DEMO_IMAGE) $(OUT)/demo.lic --bpp $(DEMO_BPP) --force -v
	$(BIN)/lcodec decode $(OUT)/demo.lic $(OUT)/demo.png --force -v
	$(BIN)/lcodec info $(OUT)/demo.lic
	@$(BIN)/python scripts/demo_vs_jpeg.py $(DEMO_IMAGE) $(OUT)/demo.lic $(OUT)/demo.png

test: $(STAMP)
	$(BIN)/python -m pytest

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
