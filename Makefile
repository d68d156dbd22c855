# segtutor — the two commands are `make lab` and `make test`; both install into .venv on first use.
PYTHON        ?= python3
VENV          ?= .venv
BIN           := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
LAB_ARGS      ?=
PYTEST_ARGS   ?=
STAMP         := $(VENV)/.segtutor-installed
# Jupyter refuses to start as root ("Running as root is not recommended") unless told --allow-root; containers,
# CI boxes and many cloud VMs run as root.
ROOT_ARGS     := $(if $(filter 0,$(shell id -u)),--allow-root)
BENCH_GPU     := build/bench-gpu
SHELL         := bash
.SHELLFLAGS   := -o pipefail -c

.PHONY: lab test install clean-notebooks check-notebooks course assignments nbgrader-course bench bench-gpu clean

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $(ROOT_ARGS) $(LAB_ARGS)

test: $(STAMP)
	SEGTUTOR_BUDGET=ci MPLBACKEND=Agg $(BIN)/python -m pytest --nbval $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt tools/install_torch.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	bash tools/install_torch.sh $(BIN)/python $(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[lab,dev,classroom]"
	touch $@

# COURSE.md §6: strip outputs except cells tagged nbval-check-output (check-notebooks only reports).
clean-notebooks: $(STAMP)
	$(BIN)/python tools/notebooks.py clean notebooks

check-notebooks: $(STAMP)
	$(BIN)/python tools/notebooks.py check notebooks

# Every notebook executed at this machine's budget, as .ipynb and HTML, for instructors and previews.
course: $(STAMP)
	$(BIN)/python tools/notebooks.py execute notebooks build/course

# Student versions (nbgrader stubs, hidden tests and outputs removed), same file names: docs/INSTRUCTORS.md.
assignments: $(STAMP)
	$(BIN)/python tools/assignments.py student notebooks build/student

# An nbgrader course directory, one assignment per notebook, released versions generated: docs/INSTRUCTORS.md.
nbgrader-course: $(STAMP)
	$(BIN)/python tools/assignments.py course notebooks build/nbgrader

bench: $(STAMP)
	$(BIN)/python benchmarks/metrics.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/quality.py --budget cpu

# Every GPU figure of benchmarks/RESULTS.md in one command, on a CUDA machine:
# the CUDA tests, metrics, training throughput (fp32 / AMP / AMP+channels_last, MFU), quality at the gpu
# budget, and every notebook timed at the gpu budget. Tables and logs land in build/bench-gpu/.
bench-gpu: $(STAMP)
	@$(BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'bench-gpu needs a CUDA GPU: torch.cuda.is_available() is False (torch ' + torch.__version__ + ')')"
	mkdir -p $(BENCH_GPU)
	$(BIN)/python -m pytest tests -q -k cuda | tee $(BENCH_GPU)/cuda-tests.txt
	$(BIN)/python benchmarks/metrics.py --device cuda | tee $(BENCH_GPU)/metrics.md
	$(BIN)/python benchmarks/throughput.py --device cuda --json $(BENCH_GPU)/throughput.json | tee $(BENCH_GPU)/throughput.md
	$(BIN)/python benchmarks/quality.py --budget gpu --device cuda 2>&1 >$(BENCH_GPU)/quality.jsonl | tee $(BENCH_GPU)/quality.md
	SEGTUTOR_BUDGET=gpu MPLBACKEND=Agg $(BIN)/python -m pytest --nbval notebooks -q --durations=30 | tee $(BENCH_GPU)/notebooks.txt

clean:
	rm -rf build .pytest_cache
