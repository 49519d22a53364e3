# limiter — build, test, lint, demo, bench, deb, install.
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
# The delay line between two namespaces that tests and bench use for real round-trip times.
TEST_PROGRAMS := build/delayline
TS_SOURCES  := $(shell find cli lib -name '*.ts' 2>/dev/null)
DOCS        := build/doc/limiter.8 build/completions/limiter

VERSION  := $(shell node -p "require('./package.json').version" 2>/dev/null)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB      := build/deb/speed-limiter_$(VERSION)_$(DEB_ARCH).deb
# The man page's date: the build's (SOURCE_DATE_EPOCH when dpkg-buildpackage sets it).
DOC_DATE := $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} '+%B %Y')

# Debian packages, by the targets that need them; each target installs its own.
BUILD_APT := clang llvm libbpf-dev libbpf1 linux-libc-dev gcc
TEST_APT  := iperf3 iproute2 ethtool iputils-ping tmux util-linux python3 curl groff-base debhelper dpkg-dev \
	lintian prometheus ansible systemd
BENCH_APT := iperf3 iproute2 ethtool iputils-ping python3 curl
DEMO_APT  := iperf3 iproute2

.PHONY: help deps build docs typecheck lint format test test-unit test-cli test-kernel test-package \
	test-deps demo bench deb lintian clean install

help: ## show this list
	@grep -hE '^[a-z%.-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort | expand -t 16

deps: node_modules/.installed ## install what the build needs (apt packages, npm ci)
	$(Q)scripts/apt-deps.sh $(BUILD_APT)

test-deps: deps ## install what the tests need besides the build
	$(Q)scripts/apt-deps.sh $(TEST_APT)

node_modules/.installed: package.json package-lock.json
	$(Q)npm ci --no-audit --no-fund --loglevel=error
	$(Q)touch $@

%.bpf.o: %.bpf.c bpf/limiter.h
	@echo "  CLANG   $@"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

bpf/limiter.bpf.o: $(wildcard bpf/*.bpf.h)

build/%: test/harness/%.c
	@echo "  CC      $@"
	$(Q)mkdir -p build && gcc -O2 -Wall -Werror -o $@ $<

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

# The man page and the completion come from the table of commands and options (cli/options.ts).
$(DOCS) &: dist/.built doc/limiter.8.in scripts/gen-docs.mjs
	@echo "  DOCS    $(DOCS)"
	$(Q)node scripts/gen-docs.mjs "$(VERSION)" "$(DOC_DATE)"

docs: $(DOCS) ## the man page and the bash completion, from cli/options.ts

build: deps $(BPF_OBJECTS) dist/.built $(DOCS) ## build the BPF object, the CLI (bin/limiter runs it) and the docs

test: test-deps build $(TEST_BPF_OBJECTS) $(TEST_PROGRAMS) ## lint, then every test tier (unit, cli, kernel, package); ends with "N passed, N failed"
	$(Q)scripts/run-tests.sh lint unit cli kernel package

lint: deps ## eslint (typescript-eslint, type-aware) and prettier over every source file
	$(Q)npx eslint --max-warnings 0 .
	$(Q)npx prettier --check --log-level warn .

format: deps ## rewrite the sources in the project's format (prettier)
	$(Q)npx prettier --write --log-level warn .

typecheck: dist/.built ## type-check everything, tests and scripts included
	$(Q)npx tsc -p tsconfig.test.json

test-unit: build ## unit tier only (no root needed)
	$(Q)scripts/run-tests.sh unit

test-cli: build ## cli tier only
	$(Q)scripts/run-tests.sh cli

test-kernel: test-deps build $(TEST_BPF_OBJECTS) $(TEST_PROGRAMS) ## kernel tier only (root, real cgroups, BPF and loopback traffic)
	$(Q)scripts/run-tests.sh kernel

test-package: test-deps build ## package tier only: build the .deb, install, use and purge it
	$(Q)scripts/run-tests.sh package

deb: deps ## build the Debian package with dpkg-buildpackage, in build/deb
	$(Q)scripts/apt-deps.sh debhelper dpkg-dev
	$(Q)rm -rf build/deb && mkdir -p build/deb/speed-limiter-$(VERSION)
	$(Q)git ls-files -z --cached --others --exclude-standard | \
		xargs -0 cp --parents -t build/deb/speed-limiter-$(VERSION)
	$(Q)cd build/deb/speed-limiter-$(VERSION) && dpkg-buildpackage -us -uc -b $(if $(filter 1,$(V)),,>../build.log 2>&1) || \
		{ tail -40 build/deb/build.log >&2; exit 1; }
	@echo "  DEB     $(DEB)"

lintian: ## run lintian on the built .deb (make deb first)
	$(Q)scripts/apt-deps.sh lintian
	$(Q)lintian --fail-on error --display-info $(DEB)

bench: build $(TEST_BPF_OBJECTS) $(TEST_PROGRAMS) ## accuracy vs tc tbf, latency, cost, CLI and scale tables (QUICK=1: under 3 min)
	$(Q)scripts/apt-deps.sh $(BENCH_APT)
	$(Q)QUICK=$(QUICK) npx tsx bench/bench.ts

demo: build ## show the same transfer unlimited, then limited
	$(Q)scripts/apt-deps.sh $(DEMO_APT)
	$(Q)scripts/demo.sh

clean: ## remove build outputs
	$(Q)rm -rf dist build $(BPF_OBJECTS) $(TEST_BPF_OBJECTS) test-results

install: ## place the built files under $(DESTDIR)$(PREFIX); builds nothing
	$(Q)test -f dist/.built -a -f bpf/limiter.bpf.o -a -f build/doc/limiter.8 || { echo "run 'make build' first" >&2; exit 1; }
	$(Q)install -d $(DESTDIR)$(LIBDIR)/dist $(DESTDIR)$(LIBDIR)/bpf $(DESTDIR)$(LIBDIR)/node_modules \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	$(Q)install -m 0755 dist/limiter.mjs $(DESTDIR)$(LIBDIR)/dist/
	$(Q)install -m 0644 package.json $(DESTDIR)$(LIBDIR)/
	$(Q)install -m 0644 bpf/limiter.bpf.o $(DESTDIR)$(LIBDIR)/bpf/
	@# The bundle holds every JavaScript dependency but koffi, which loads a native addon:
	@# its JavaScript and the glibc build of the addon, not its sources, docs or install script.
	$(Q)cd node_modules && find koffi @koromix/koffi-linux-* -type f \
		\( -name '*.js' -o -name '*.cjs' -o -name package.json -o -path '*/linux_*/koffi.node' \) \
		! -name cnoke.cjs | xargs cp --parents -t $(DESTDIR)$(LIBDIR)/node_modules
	$(Q)printf '#!/bin/sh\nexec node %s/dist/limiter.mjs "$$@"\n' $(LIBDIR) >$(DESTDIR)$(BINDIR)/limiter
	$(Q)chmod 0755 $(DESTDIR)$(BINDIR)/limiter
	$(Q)install -m 0644 build/doc/limiter.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	$(Q)install -m 0644 build/completions/limiter $(DESTDIR)$(PREFIX)/share/bash-completion/completions/
