# tug: build, test and demo. Run as root on Debian 12; every target installs what it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := bundle

ROOT     := $(abspath .)
DENO     := $(ROOT)/tools/deno
DENO_BIN := $(ROOT)/tools/node_modules/.installed
DIST     := $(ROOT)/dist
SOURCES  := $(shell find . -name '*.ts' -not -path './tools/*' -not -path './dist/*' -not -name '*_test.ts' -not -path './tests/*' -not -path './bench/*') deno.json
RUNFLAGS := --allow-all --no-prompt --v8-flags=--single-threaded,--max-semi-space-size=1,--expose-gc
export DENO_NO_UPDATE_CHECK := 1

# Debian packages the test suite needs, and the extra ones the benchmarks need.
TEST_PACKAGES  := busybox-static libseccomp2 docker-registry skopeo umoci prometheus iproute2 procps util-linux python3 openssl
BENCH_PACKAGES := runc crun containerd hyperfine

.PHONY: deps bench-deps deno bundle build test unit demo bench check check-aarch64 fmt clean

deps:
	@tools/apt-ensure $(TEST_PACKAGES)

bench-deps: deps
	@tools/apt-ensure $(BENCH_PACKAGES)

deno: $(DENO_BIN)
$(DENO_BIN): tools/package.json tools/package-lock.json
	npm install --prefix tools --no-save --no-audit --no-fund --loglevel=error
	@$(DENO) --version >/dev/null && touch $@

# dist/tug.js (deno bundle, one chunk per subcommand) and a dist/tug launcher with the flags of the compiled binary.
bundle: $(DIST)/tug
$(DIST)/tug: $(DENO_BIN) $(SOURCES)
	@rm -rf $(DIST)/*.js $(DIST)/.bundle && mkdir -p $(DIST)/.bundle
	@# npm packages resolve to their builds for runtimes other than Node (the react-native condition:
	@# b4a on Uint8Array, bare-events), so that unpacking a layer never touches Node's `process` or
	@# `Buffer`: the first touch sets up Deno's Node compatibility for the process's life (~9 MiB of an
	@# empty process with what tar-stream pulled in, ~4 MiB of the daemon's RSS).
	DENO_CONDITIONS=react-native $(DENO) bundle --quiet --code-splitting --platform deno --outdir $(DIST)/.bundle cli.ts
	@mv $(DIST)/.bundle/cli.js $(DIST)/tug.js && mv $(DIST)/.bundle/*.js $(DIST)/ 2>/dev/null; rm -rf $(DIST)/.bundle
	@# The bundler's CommonJS helper calls createRequire() at load (about 13 ms per process). What npm
	@# code is left calling require() does so in try/catch for optional modules with a fallback
	@# (tar-stream's fs constants, react-native-b4a): the helper throws, as require() in a browser does.
	@sed -i -e '/^import { createRequire as __deno_internal_createRequire } from "node:module";$$/d' \
	  -e 's|^var __require = __deno_internal_createRequire(import.meta.url);$$|var __require = (id) => { throw new Error(`tug bundles no require("$${id}")`); };|' $(DIST)/*.js
	@extra=$$(grep -aoh '__require("[^"]*")' $(DIST)/*.js | sort -u | grep -v -x -e '__require("node:fs")' -e '__require("react-native-b4a")'); \
	  if [ -n "$$extra" ]; then echo "make bundle: npm code needs $$extra, which the bundle does not provide" >&2; exit 1; fi
	@# Deno reads and parses every module a literal import("./chunk.js") names before running anything
	@# (about 3.5 ms for the whole bundle); a specifier it cannot analyse is loaded only when called.
	@sed -i -E 's/import\("\.\/([A-Za-z0-9_-]+\.js)"\)/import("." + "\/\1")/g' $(DIST)/*.js
	@printf '#!/bin/sh\n# tug launcher: runs the bundle with the flags the compiled binary has.\nDENO_NO_UPDATE_CHECK=1 exec "%s" run $(RUNFLAGS) --no-config "%s" "$$@"\n' \
	  "$$(readlink -f tools/node_modules/@deno/linux-*-glibc/deno)" "$(DIST)/tug.js" > $(DIST)/tug.tmp
	@chmod +x $(DIST)/tug.tmp && mv $(DIST)/tug.tmp $(DIST)/tug
	@echo "built $(DIST)/tug (bundle)"

# A single self-contained binary. deno compile needs its runtime image (denort); set DENORT_BIN when it cannot download one.
build: $(DENO_BIN)
	@mkdir -p $(DIST)
	@if ! $(DENO) compile $(RUNFLAGS) --no-check=remote --output $(DIST)/tug cli.ts 2>$(DIST)/compile.log; then \
	  cat $(DIST)/compile.log >&2; \
	  if grep -qiE 'dns|download|network|connect|denort' $(DIST)/compile.log; then \
	    echo "make build: deno compile could not obtain its runtime image (denort); set DENORT_BIN=/path/to/denort, or use 'make bundle'" >&2; \
	  fi; exit 1; fi
	@echo "built $(DIST)/tug (compiled)"

test: deps bundle
	@tools/run-tests

unit: $(DENO_BIN)
	@tools/run-tests --unit

demo: deps bundle
	@tools/demo

bench: bench-deps bundle
	@$(DENO) run -A --v8-flags=--single-threaded bench/run.ts $(if $(QUICK),--quick,)

check: $(DENO_BIN)
	$(DENO) check cli.ts mod.ts
	$(DENO) lint
	$(DENO) fmt --check

# The fork tests on aarch64 under qemu-user (tools/check-aarch64; not part of make test).
check-aarch64:
	tools/check-aarch64

fmt: $(DENO_BIN)
	$(DENO) fmt

clean:
	rm -rf $(DIST)
