# edshim — Envoy in front of every published Docker port.
#
#   make demo     build, then publish a container's port with a private dockerd, served by Envoy
#   make test     install what the tests need (Envoy, dockerd), build, run every test
#                 and replay the fuzz corpus (as root, Docker and network namespaces
#                 must work: EDSHIM_REQUIRE_DOCKER=0 / EDSHIM_REQUIRE_NAMESPACES=0 skip)
#   make test-long  the same with the property and chaos tests at full size
#   make release  optimized, fully static binary in .build/release/edshim
#   make install  PREFIX=/usr/local DESTDIR=   copy that binary; builds nothing:
#                 make release && sudo make install

SWIFT   ?= $(CURDIR)/scripts/own-tmpdir.sh swift
PREFIX  ?= /usr/local
DESTDIR ?=
DEBUG_BIN   := $(CURDIR)/.build/debug/edshim
RELEASE_BIN := $(CURDIR)/.build/release/edshim

.PHONY: all build test test-long test-deps demo install release clean

all: build

build:
	$(SWIFT) build

test-deps:
	scripts/ensure-test-deps.sh

# As root every test can run: a Docker or network-namespace test that cannot is then a
# failure, not a skip (EDSHIM_REQUIRE_DOCKER=0 or EDSHIM_REQUIRE_NAMESPACES=0 let it
# skip, loudly). Run as another user, those tests report SKIPPED.
ifeq ($(shell id -u),0)
EDSHIM_REQUIRE_DOCKER ?= 1
EDSHIM_REQUIRE_NAMESPACES ?= 1
endif
export EDSHIM_REQUIRE_DOCKER EDSHIM_REQUIRE_NAMESPACES

test: test-deps
	$(SWIFT) build --build-tests
	EDSHIM_BIN=$(DEBUG_BIN) PATH="$$(scripts/ensure-test-deps.sh --print-path):$$PATH" \
		scripts/run-tests.sh $(SWIFT) test --skip-build
	$(MAKE) fuzz-replay

# The property test (10,000 random operations against a real Envoy) and the chaos
# test (200 shims while the server is SIGKILLed at random) at full size.
test-long: test-deps
	$(SWIFT) build --build-tests
	EDSHIM_PROPERTY_OPERATIONS=10000 EDSHIM_CHAOS_SHIMS=200 EDSHIM_BIN=$(DEBUG_BIN) \
		PATH="$$(scripts/ensure-test-deps.sh --print-path):$$PATH" scripts/run-tests.sh $(SWIFT) test --skip-build
	$(MAKE) fuzz-replay

demo: build
	scripts/ensure-test-deps.sh --envoy-only
	PATH="$$(scripts/ensure-test-deps.sh --print-path):$$PATH" EDSHIM_BIN=$(DEBUG_BIN) scripts/demo.sh

# The shim runs once per published port: a fully static executable keeps each
# idle shim's private memory small (no shared-library relocations to dirty).
release:
	$(SWIFT) build -c release --static-swift-stdlib -Xswiftc -static-executable

# Only copies what `make release` built: as a prerequisite, `sudo make install` would
# build as root (a root-owned .build, and no swift on sudo's PATH).
install:
	@test -f "$(RELEASE_BIN)" || { echo "make install: $(RELEASE_BIN) is missing: run make release first, as yourself, then sudo make install" >&2; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(RELEASE_BIN) $(DESTDIR)$(PREFIX)/bin/edshim

clean:
	rm -rf .build .build-fuzz .build-fuzz-replay

# edshim against Debian's docker-proxy, same run (docs/PERFORMANCE.md records the
# numbers): UDP echoes per second (bench/udp-bench.sh); the private memory of an
# idle TCP port and the time to publish one, also with 120 published
# (bench/tcp-ports.sh); HTTP requests per second (bench/http-bench.sh); the latency
# of a port a shim relays itself beside 2,000 open connections (bench/tcp-relay.py).
BENCH_DIR := $(CURDIR)/.build/bench

.PHONY: bench

$(BENCH_DIR)/%: bench/%.c bench/bench-address.h
	mkdir -p $(BENCH_DIR)
	$(CC) -O2 -Wall -o $@ $<

bench: release $(BENCH_DIR)/udp-load $(BENCH_DIR)/udp-echo-server $(BENCH_DIR)/udp-reference-proxy $(BENCH_DIR)/http-server
	EDSHIM=$(RELEASE_BIN) BENCH_DIR=$(BENCH_DIR) bench/udp-bench.sh
	EDSHIM=$(RELEASE_BIN) BENCH_DIR=$(BENCH_DIR) CLIENTS=16 IN_FLIGHT=1 bench/udp-bench.sh
	EDSHIM=$(RELEASE_BIN) BENCH_DIR=$(BENCH_DIR) GSO=1 bench/udp-bench.sh
	scripts/ensure-test-deps.sh --envoy-only
	EDSHIM=$(RELEASE_BIN) BENCH_DIR=$(BENCH_DIR) PATH="$$(scripts/ensure-test-deps.sh --print-path):$$PATH" bench/tcp-ports.sh
	EDSHIM=$(RELEASE_BIN) BENCH_DIR=$(BENCH_DIR) PATH="$$(scripts/ensure-test-deps.sh --print-path):$$PATH" bench/http-bench.sh
	EDSHIM=$(RELEASE_BIN) BENCH_DIR=$(BENCH_DIR) bench/tcp-relay.py

# libFuzzer over the protocol decoders, the flag parser and the label sanitizer
# (docs/fuzzing.md): FUZZ_RUNS executions per target, on a scratch copy of
# Fuzz/Corpus; fails on any crash, trap or violated property, leaving the input in
# .build-fuzz/findings/. Fuzz/ is a package of its own with its own scratch path, so
# `make build` never compiles it (`make test` builds it plainly: fuzz-replay). `--sanitize fuzzer` tells SwiftPM
# that libFuzzer supplies main; SwiftPM turns each `--sanitize` into its own
# `-sanitize=` flag and the compiler keeps only the last, so ASan is added through
# `-Xswiftc -sanitize=fuzzer,address`. FUZZ_FLAGS passes libFuzzer options
# (FUZZ_FLAGS=-max_total_time=60).
FUZZ_RUNS    ?= 1000000
FUZZ_FLAGS   ?=
FUZZ_SCRATCH := $(CURDIR)/.build-fuzz

# The fuzz targets built plainly, each a corpus replayer (no libFuzzer): `make test`
# runs them over Fuzz/Corpus, so the fuzz package keeps compiling against the core
# and its properties keep holding for every saved input.
FUZZ_REPLAY_SCRATCH := $(CURDIR)/.build-fuzz-replay

.PHONY: fuzz fuzz-replay
fuzz-replay:
	$(SWIFT) build --package-path Fuzz --scratch-path $(FUZZ_REPLAY_SCRATCH)
	for target in FuzzWireProtocol FuzzShimArguments FuzzLabels; do \
		$(FUZZ_REPLAY_SCRATCH)/debug/$$target Fuzz/Corpus/$$target || exit 1; \
	done

fuzz:
	$(SWIFT) build --package-path Fuzz --scratch-path $(FUZZ_SCRATCH) -c release \
		--sanitize fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	Fuzz/run-fuzzer.sh $(FUZZ_SCRATCH) FuzzWireProtocol 4096 $(FUZZ_RUNS) $(FUZZ_FLAGS)
	Fuzz/run-fuzzer.sh $(FUZZ_SCRATCH) FuzzShimArguments 512 $(FUZZ_RUNS) $(FUZZ_FLAGS)
	Fuzz/run-fuzzer.sh $(FUZZ_SCRATCH) FuzzLabels 512 $(FUZZ_RUNS) $(FUZZ_FLAGS)
