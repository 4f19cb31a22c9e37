# OpenADS — every command a developer or CI needs. Python 3.11, Debian.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip
STAMP  := $(VENV)/.installed

.PHONY: install vendor install-units demo test test-pbx test-chaos test-install pbx pbx-stop lint bench migrate-check clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# The panel's front-end libraries from npm (package.json, pinned by package-lock.json), copied into
# web/static/vendor/ (not committed): the panel serves them itself, no CDN (decision 0040).
VENDOR := web/static/vendor/chart.umd.min.js

$(VENDOR): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	mkdir -p web/static/vendor
	cp node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)
	cp node_modules/chart.js/LICENSE.md web/static/vendor/chart.js.LICENSE.md
	mkdir -p web/static/vendor/leaflet
	cp -r node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css \
		node_modules/leaflet/dist/images node_modules/leaflet/LICENSE web/static/vendor/leaflet/

vendor: $(VENDOR)

install: $(STAMP) $(VENDOR)

# The systemd units and the `openads` command of a production server (docs/install.md), as root;
# options of deploy/install-units.sh in UNITS_ARGS, e.g. UNITS_ARGS="--user ads --env-file /etc/ads.env".
install-units:
	deploy/install-units.sh $(UNITS_ARGS)

demo: $(STAMP) $(VENDOR)
	$(BIN)/openads demo

# The suite in TEST_WORKERS processes (pytest-xdist; each has its own database): its tests wait on
# browsers, sockets and subprocesses as much as they compute, so two processes on two cores halve it.
# TEST_WORKERS=0 runs it in this one process (for a debugger).
TEST_WORKERS ?= 2

test: $(STAMP) $(VENDOR)
	$(BIN)/ruff check .
	$(BIN)/mypy models ari_app
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# The real Asterisk for tests (pbx/build.sh builds it once into ~/.cache/openads-pbx).
pbx:
	pbx/run.sh start

pbx-stop:
	pbx/run.sh stop

# Call flows against the real Asterisk with SIP phones (baresip) and openads ari/agi/worker/web.
# Builds Asterisk on first use (about 7 minutes), stops the PBX afterwards.
test-pbx: $(STAMP)
	pbx/deps.sh
	pbx/run.sh start
	OPENADS_PBX_TESTS=1 $(BIN)/python -m pytest -q --durations=10 tests/pbx; rc=$$?; pbx/run.sh stop; exit $$rc

# Issue 11's chaos suite: web, worker and ari as real processes on their own PostgreSQL cluster and
# Redis, killed and restarted under load; checks nothing is lost or sent twice (about 5 minutes).
test-chaos: $(STAMP)
	OPENADS_CHAOS_TESTS=1 $(BIN)/python -m pytest -q -s tests/chaos

# docs/install.md followed on a fresh Debian 12 booted with systemd in systemd-nspawn (as root; needs
# systemd-container, debootstrap, iptables): every ```sh block of the doc, then the services under the real
# systemd. Caches the Debian base and the apt/pip/npm downloads in ~/.cache/openads-install-vm.
test-install: $(STAMP)
	OPENADS_INSTALL_TESTS=1 $(BIN)/python -m pytest -q -s -x tests/install_vm

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy models ari_app

migrate-check: $(STAMP)
	$(BIN)/python -m bench.migrate_check

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var/ build/ *.egg-info node_modules/ web/static/vendor/
