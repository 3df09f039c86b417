# nonstop — make targets. `make test` is what CI runs (.ci/run) and what a new user runs.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
JAR ?=
CONFIG ?= templates/nonstop.yml
APPSPEC ?= appspec/appspec.yml
TARGET := x86_64-unknown-linux-gnu
GLIBC := 2.17
BINS := stop start health switch deploy-second nonstop
TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
ZIG_BIN = $(TARGET_DIR)/$(TARGET)/release
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

.PHONY: all build test fmt-check lint unit deps demo demo-app zigbuild bundle bundle-usage clean

all: build

build:
	$(CARGO) build --release --bins

## deps: install what a fresh machine lacks (nginx from apt-get; cargo-zigbuild for `make bundle`)
deps:
	scripts/deps.sh nginx zigbuild

## test: fmt check, clippy -D warnings, every test (real nginx + real java)
test: fmt-check lint demo-app
	scripts/deps.sh nginx sudo
	$(CARGO) test --all-targets

fmt-check:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

demo-app:
	@for v in v1 v2; do [ target/demo-app/demo-app-$$v.jar -nt examples/demo-app/src/DemoApp.java ] || bash examples/demo-app/build.sh target/demo-app $$v; done

## demo: private nginx on loopback, deploy v1 then v2 with the real binaries under traffic
demo: demo-app
	scripts/deps.sh nginx
	$(CARGO) build --release --bins --example demo
	NONSTOP_BIN_DIR=target/release target/release/examples/demo

## zigbuild: every binary with cargo-zigbuild against glibc $(GLIBC), checked against that floor
zigbuild:
	scripts/deps.sh zigbuild
	PATH="$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$$PATH" \
	  $(CARGO) zigbuild --release --target $(TARGET).$(GLIBC) --bins
	scripts/glibc-floor.sh "$(ZIG_BIN)" $(GLIBC) $(BINS)

## bundle JAR=path [CONFIG=path] [APPSPEC=appspec/appspec-balanced.yml]: dist/nonstop-bundle.zip,
## made by the zigbuilt `nonstop bundle` (which checks the config, appspec and timeouts first)
bundle: bundle-usage zigbuild
	"$(ZIG_BIN)/nonstop" bundle --jar "$(JAR)" --config "$(CONFIG)" --appspec "$(APPSPEC)" -o dist/nonstop-bundle.zip

bundle-usage:
	@[ -n "$(JAR)" ] || { echo "usage: make bundle JAR=path/to/app.jar [CONFIG=path/to/nonstop.yml] [APPSPEC=path/to/appspec.yml]" >&2; exit 2; }

clean:
	$(CARGO) clean
	rm -rf dist

## completions: bash/zsh/fish completions and man pages for `nonstop`, generated from its clap
## definitions, into dist/completions/ and dist/man/
.PHONY: completions
completions:
	$(CARGO) build --release --bin nonstop
	scripts/completions.sh "$(TARGET_DIR)/release/nonstop" dist
	@echo "completions: dist/completions/{nonstop.bash,_nonstop,nonstop.fish}; man pages: dist/man/*.1" >&2

## dist: the release tarball dist/nonstop-$(VERSION)-x86_64-linux.tar.gz and its .sha256: the
## zigbuilt binaries (glibc floor checked), appspec/, templates/, man pages, completions,
## INSTALL; then checked as a user gets it (scripts/dist-check.sh: contents, its own bundle)
.PHONY: dist
dist: zigbuild demo-app
	scripts/dist.sh "$(ZIG_BIN)" $(VERSION) dist $(BINS)
	scripts/dist-check.sh dist/nonstop-$(VERSION)-x86_64-linux.tar.gz target/demo-app/demo-app-v1.jar

## bench: five deploy approaches side by side under load, app boot 1/5/20 s (BENCHMARKS.md)
## -> bench/results/{results.json,results.md,timeline-*.svg} and BENCHMARKS.md; BENCH_ARGS=--help
.PHONY: bench
BENCH_TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
bench: demo-app
	scripts/deps.sh nginx lsof curl
	$(CARGO) build --release --bins --example bench
	NONSTOP_BIN_DIR=$(BENCH_TARGET_DIR)/release BENCH_COMMAND="make bench $(BENCH_ARGS)" \
	  $(BENCH_TARGET_DIR)/release/examples/bench $(BENCH_ARGS)
