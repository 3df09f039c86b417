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

.PHONY: all build test fmt-check lint unit deps demo demo-app spring-app spring-large-app zigbuild bundle bundle-usage clean system-test

all: build

build:
	$(CARGO) build --release --bins

## deps: install what a fresh machine lacks (nginx and Maven from apt-get; cargo-zigbuild for `make bundle`)
deps:
	scripts/deps.sh nginx maven zigbuild

## test: fmt check, clippy -D warnings, every test (real nginx + real java: the stand-in and Spring Boot)
test: fmt-check lint demo-app spring-app
	scripts/deps.sh nginx sudo nft ip
	$(CARGO) test --all-targets

fmt-check:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --all-targets -- -D warnings

demo-app:
	@for v in v1 v2; do [ target/demo-app/demo-app-$$v.jar -nt examples/demo-app/src/DemoApp.java ] || bash examples/demo-app/build.sh target/demo-app $$v; done

## spring-app: the Spring Boot 3 jars target/spring-app/spring-app-{v1,v2}.jar (`mvn -B package`).
## Cached: rebuilt only when the pom, build.sh or a source is newer than the jar; Maven's ~/.m2
## is the download cache, and once it holds everything build.sh runs Maven offline (-o).
SPRING_SRC := examples/spring-boot-app/pom.xml examples/spring-boot-app/build.sh \
  $(shell find examples/spring-boot-app/src -type f)
spring-app: target/spring-app/spring-app-v1.jar target/spring-app/spring-app-v2.jar

target/spring-app/spring-app-%.jar: $(SPRING_SRC)
	@scripts/deps.sh maven
	bash examples/spring-boot-app/build.sh target/spring-app $*

## spring-large-app: a PetClinic-sized Spring Boot 3 app (web, JPA, Thymeleaf, H2), built as
## spring-app is: target/spring-large-app/spring-large-app-{v1,v2}.jar. Only `bench` needs it.
SPRING_LARGE_SRC := examples/spring-large-app/pom.xml examples/spring-large-app/build.sh \
  examples/spring-boot-app/build.sh \
  $(shell find examples/spring-large-app/src -type f)
spring-large-app: target/spring-large-app/spring-large-app-v1.jar target/spring-large-app/spring-large-app-v2.jar

target/spring-large-app/spring-large-app-%.jar: $(SPRING_LARGE_SRC)
	@scripts/deps.sh maven
	bash examples/spring-large-app/build.sh target/spring-large-app $*

## demo: private nginx on loopback, deploy the Spring Boot app v1 then v2 with the real binaries
## under traffic (DEMO_APP=stand-in: the dependency-free stand-in instead)
DEMO_APP ?= spring
demo: demo-app spring-app zigbuild
	scripts/deps.sh nginx
	NONSTOP_BIN_DIR=$(ZIG_BIN) DEMO_APP=$(DEMO_APP) $(ZIG_BIN)/examples/demo

## zigbuild: THE release build: every binary and the demo and bench examples, with cargo-zigbuild
## against glibc $(GLIBC), the binaries checked against that floor. demo, bench, bundle, dist,
## completions and system-test all use it (one release compile, in $(ZIG_BIN)).
zigbuild:
	scripts/deps.sh zigbuild
	PATH="$$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$$PATH" \
	  $(CARGO) zigbuild --release --target $(TARGET).$(GLIBC) --bins --example demo --example bench
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
completions: zigbuild
	scripts/completions.sh "$(ZIG_BIN)/nonstop" dist
	@echo "completions: dist/completions/{nonstop.bash,_nonstop,nonstop.fish}; man pages: dist/man/*.1" >&2

## dist: the release tarball dist/nonstop-$(VERSION)-x86_64-linux.tar.gz and its .sha256: the
## zigbuilt binaries (glibc floor checked), appspec/, templates/, man pages, completions,
## INSTALL; then checked as a user gets it (scripts/dist-check.sh: contents, its own bundle)
.PHONY: dist
dist: zigbuild demo-app
	scripts/dist.sh "$(ZIG_BIN)" $(VERSION) dist $(BINS)
	scripts/dist-check.sh dist/nonstop-$(VERSION)-x86_64-linux.tar.gz target/demo-app/demo-app-v1.jar

## bench: five deploy approaches side by side under load, with the Spring Boot app and the stand-in at a 20 s boot (BENCHMARKS.md)
## -> bench/results/{results.json,results.md,timeline-*.svg} and BENCHMARKS.md; BENCH_ARGS=--help
.PHONY: bench
BENCH_TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
bench: demo-app spring-app spring-large-app zigbuild
	scripts/deps.sh nginx lsof curl nft ip
	NONSTOP_BIN_DIR=$(ZIG_BIN) BENCH_COMMAND="make bench $(BENCH_ARGS)" \
	  $(ZIG_BIN)/examples/bench $(BENCH_ARGS)

## system-test: EC2-like hosts (Debian 12 systemd-nspawn, tests/system/ec2host.sh; needs root):
## release binaries + demo jars -> bundles $(SYSTEM_DIR)/{v1,v2}/bundle, deployed through a
## CodeDeploy agent stand-in under load from this machine (README "On an EC2 host"); the fleet test
## rolls three hosts with the Ansible playbooks (ansible-core $(ANSIBLE_VERSION) from PyPI in a venv)
## SYSTEM_TESTS=NAME runs only the tests whose names contain NAME
SYSTEM_DIR = $(BENCH_TARGET_DIR)/system
# The same glibc-2.17 binaries `make bundle` and `make dist` ship (one release build in CI).
SYSTEM_HOST_PREFIX = $(or $(NONSTOP_SYSTEM_HOST_PREFIX),nsys-)
SYSTEM_HOSTS = tests/system/ec2host.sh ls | awk 'NR > 1 && index($$1, "$(SYSTEM_HOST_PREFIX)") == 1 { print $$1 }'
# ansible-core for the fleet test (the playbooks of templates/ansible/), pinned: it runs on
# Python 3.11-3.13 here and manages the hosts' Python 3.11 (Debian 12).
ANSIBLE_VERSION := 2.19.14
ANSIBLE_VENV = $(abspath $(TARGET_DIR))/ansible
system-test: demo-app spring-app zigbuild dist
	@[ "$$(id -u)" = 0 ] || { echo "system-test: needs root (it boots systemd-nspawn hosts)" >&2; exit 1; }
	ANSIBLE_VENV=$(ANSIBLE_VENV) ANSIBLE_VERSION=$(ANSIBLE_VERSION) scripts/deps.sh ansible
	@# The real CodeDeploy zips, made as a build machine without Rust makes them: by `nonstop
	@# bundle` of the release tarball, unpacked; then unpacked as the agent does.
	rm -rf $(SYSTEM_DIR)/release && mkdir -p $(SYSTEM_DIR)/release && \
	  tar -xzf dist/nonstop-$(VERSION)-x86_64-linux.tar.gz -C $(SYSTEM_DIR)/release
	for v in v1 v2; do \
	  rm -rf $(SYSTEM_DIR)/$$v && mkdir -p $(SYSTEM_DIR)/$$v && \
	  $(SYSTEM_DIR)/release/nonstop-$(VERSION)-x86_64-linux/bin/nonstop bundle \
	    --jar target/demo-app/demo-app-$$v.jar --config tests/system/nonstop.yml \
	    --appspec $(SYSTEM_DIR)/release/nonstop-$(VERSION)-x86_64-linux/appspec/appspec.yml \
	    -o $(SYSTEM_DIR)/$$v/nonstop-bundle.zip && \
	  python3 scripts/unzip.py $(SYSTEM_DIR)/$$v/nonstop-bundle.zip $(SYSTEM_DIR)/$$v/bundle; \
	done
	tests/system/ec2host.sh image
	@# Each test powers its host off when it ends (a Drop guard); the trap catches a killed run.
	@down() { for h in $$($(SYSTEM_HOSTS)); do echo "system-test: powering off leftover host $$h" >&2; \
	  tests/system/ec2host.sh down "$$h" >/dev/null 2>&1 || true; done; }; \
	trap down EXIT INT TERM; \
	NONSTOP_SYSTEM_DIR=$(SYSTEM_DIR) NONSTOP_SYSTEM_TARBALL=$(CURDIR)/dist/nonstop-$(VERSION)-x86_64-linux.tar.gz \
	  NONSTOP_ANSIBLE_PLAYBOOK=$(ANSIBLE_VENV)/bin/ansible-playbook \
	  $(CARGO) test --test system -- --ignored --test-threads=1 --nocapture $(SYSTEM_TESTS)
