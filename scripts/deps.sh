#!/usr/bin/env bash
# Install what a fresh machine lacks, or say clearly how to. Usage: scripts/deps.sh nginx maven zigbuild
# (maven: `make spring-app` builds examples/spring-boot-app with it)
# (lsof and curl: only `make bench` needs them, for the legacy scripts in bench/legacy/;
# sudo: `make test` checks the sudoers file `nonstop setup` writes with its visudo)
set -euo pipefail
need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "deps: $1 is missing; install it as root: $2" >&2
    exit 1
  fi
}
for what in "$@"; do
  case "$what" in
    nginx)
      if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        need_root nginx "apt-get install -y nginx-light"
        echo "deps: installing nginx from apt (nothing is started)" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # policy-rc.d exit 101: the package must not start a system nginx while installing
        own_policy=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
          printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
          own_policy=1
        fi
        apt-get install -y -qq nginx-light >/dev/null || apt-get install -y -qq nginx >/dev/null
        [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
      fi
      ;;
    maven)
      if ! command -v mvn >/dev/null 2>&1; then
        need_root maven "apt-get install -y maven"
        echo "deps: installing maven from apt" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq maven >/dev/null
      fi
      ;;
    zigbuild)
      if ! command -v cargo-zigbuild >/dev/null 2>&1 || ! python3 -c 'import ziglang' 2>/dev/null; then
        echo "deps: installing cargo-zigbuild and ziglang from PyPI" >&2
        python3 -m pip install -q --root-user-action=ignore cargo-zigbuild ziglang
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
      fi
      rustup target list --installed 2>/dev/null | grep -q x86_64-unknown-linux-gnu \
        || rustup target add x86_64-unknown-linux-gnu
      ;;
    nft | ip)
      # nft: tests/nftables.rs changes rules, each test in its own network namespace
      pkg=nftables; [ "$what" = ip ] && pkg=iproute2
      if ! command -v "$what" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$what" ]; then
        need_root "$what" "apt-get install -y $pkg"
        echo "deps: installing $pkg from apt" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "$pkg" >/dev/null
      fi
      ;;
    lsof | curl | sudo)
      # sudo: its visudo checks the sudoers file `nonstop setup` writes (src/setup.rs)
      if ! command -v "$what" >/dev/null 2>&1; then
        need_root "$what" "apt-get install -y $what"
        echo "deps: installing $what from apt" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "$what" >/dev/null
      fi
      ;;
    ansible)
      # ansible-core, pinned, from PyPI into a venv (the fleet system test runs the playbooks of
      # templates/ansible/ with it): ANSIBLE_VENV (the venv's folder), ANSIBLE_VERSION.
      venv=${ANSIBLE_VENV:?ANSIBLE_VENV}
      want=${ANSIBLE_VERSION:?ANSIBLE_VERSION}
      have=$("$venv/bin/ansible-playbook" --version 2>/dev/null | sed -n '1s/.*\[core \(.*\)\]$/\1/p' || true)
      if [ "$have" != "$want" ]; then
        if ! python3 -c 'import ensurepip' 2>/dev/null; then
          need_root python3-venv "apt-get install -y python3-venv"
          export DEBIAN_FRONTEND=noninteractive
          apt-get update -qq
          apt-get install -y -qq python3-venv >/dev/null
        fi
        echo "deps: installing ansible-core $want from PyPI into $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$want"
      fi
      ;;
    *) echo "deps: unknown dependency $what" >&2; exit 2 ;;
  esac
done
