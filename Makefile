# limiter — build, test, demo, bench, install.
# `make help` lists the targets. V=1 shows every command.

PREFIX   ?= /usr
DESTDIR  ?=
LIBDIR   := $(PREFIX)/lib/speed-limiter
BINDIR   := $(PREFIX)/bin

V ?= 0
ifeq ($(V),1)
Q :=
else
Q := @
endif

CLANG    ?= clang
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null)
BPF_CFLAGS := -target bpf -O2 -g -mcpu=v3 -Wall -Werror $(if $(MULTIARCH),-I/usr/include/$(MULTIARCH))

BPF_OBJECTS := bpf/limiter.bpf.o
TEST_BPF_OBJECTS := test/fixtures/foreign.bpf.o bench/trivial.bpf.o
TS_SOURCES  := $(shell find cli lib -name '*.ts' 2>/dev/null)

# Debian packages the build, the tests and the demo need.
APT_PACKAGES := clang llvm libbpf-dev libbpf1 linux-libc-dev iperf3 iproute2 bpftool tmux util-linux

.PHONY: help deps apt-deps build typecheck test test-unit test-cli test-kernel demo bench clean install

help: ## show this list
	@grep -hE '^[a-z%.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort | expand -t 16

deps: apt-deps node_modules/.installed ## install what is missing (apt packages, npm ci)

apt-deps: ## install the missing Debian packages (apt-get update first, only when one is missing)
	$(Q)scripts/apt-deps.sh $(APT_PACKAGES)

node_modules/.installed: package.json package-lock.json
	$(Q)npm ci --no-audit --no-fund --loglevel=error
	$(Q)touch $@

%.bpf.o: %.bpf.c bpf/limiter.h
	@echo "  CLANG   $@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

# tsc compiles; esbuild bundles the compiled JavaScript into one file, which
# halves the module loading that dominates a command's start-up (make bench:
# CLI latency). koffi stays outside: it loads a native binary.
dist/.built: $(TS_SOURCES) tsconfig.json node_modules/.installed
	@echo "  TSC     dist/"
	$(Q)rm -rf dist && npx tsc -p tsconfig.json
	@echo "  BUNDLE  dist/limiter.mjs"
	$(Q)npx esbuild dist/cli/index.js --bundle --platform=node --format=esm --target=node18 \
		--external:koffi --log-level=warning --outfile=dist/limiter.mjs \
		--banner:js="import { createRequire as __limiterRequire } from 'node:module'; const require = __limiterRequire(import.meta.url);"
	$(Q)chmod +x dist/limiter.mjs
	$(Q)touch $@

build: deps $(BPF_OBJECTS) dist/.built ## build the BPF object and the CLI (bin/limiter runs it)

test: build $(TEST_BPF_OBJECTS) ## run every test tier (unit, cli, kernel); ends with "N passed, N failed"
	$(Q)scripts/run-tests.sh unit cli kernel

typecheck: dist/.built ## type-check everything, tests and scripts included
	$(Q)npx tsc -p tsconfig.test.json

test-unit: build ## unit tier only (no root needed)
	$(Q)scripts/run-tests.sh unit

test-cli: build ## cli tier only
	$(Q)scripts/run-tests.sh cli

test-kernel: build $(TEST_BPF_OBJECTS) ## kernel tier only (root, real cgroups, BPF and loopback traffic)
	$(Q)scripts/run-tests.sh kernel

bench: build $(TEST_BPF_OBJECTS) ## accuracy vs tc tbf, latency, cost, CLI and scale tables (QUICK=1: under 3 min)
	$(Q)QUICK=$(QUICK) npx tsx bench/bench.ts

demo: build ## show the same transfer unlimited, then limited
	$(Q)scripts/demo.sh

clean: ## remove build outputs
	$(Q)rm -rf dist $(BPF_OBJECTS) $(TEST_BPF_OBJECTS) test-results

install: ## place the built files under $(DESTDIR)$(PREFIX); builds nothing
	$(Q)test -f dist/.built -a -f bpf/limiter.bpf.o || { echo "run 'make build' first" >&2; exit 1; }
	$(Q)install -d $(DESTDIR)$(LIBDIR)/bpf $(DESTDIR)$(BINDIR)
	$(Q)cp -r dist package.json $(DESTDIR)$(LIBDIR)/
	$(Q)rm -f $(DESTDIR)$(LIBDIR)/dist/.built
	$(Q)install -m 0644 bpf/limiter.bpf.o $(DESTDIR)$(LIBDIR)/bpf/
	$(Q)ln -sf ../lib/speed-limiter/dist/limiter.mjs $(DESTDIR)$(BINDIR)/limiter
