#!/usr/bin/env bash
# Fail if any binary needs a GLIBC symbol newer than the floor (2.17: Amazon Linux 2 has 2.26,
# so the bundle and the release tarball run there and on anything newer).
# Usage: scripts/glibc-floor.sh BIN_DIR GLIBC_FLOOR BIN...
set -euo pipefail
bin_dir=$1 floor=$2
shift 2
for b in "$@"; do
  f="$bin_dir/$b"
  [ -x "$f" ] || { echo "glibc-floor: missing binary $f" >&2; exit 1; }
  newest=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$floor" "$newest" | sort -V | tail -n1)" != "$floor" ]; then
    echo "glibc-floor: $b needs GLIBC_$newest, newer than $floor: it would not run on Amazon Linux 2" >&2
    exit 1
  fi
  echo "glibc-floor: $b needs at most GLIBC_${newest:-none} (floor $floor)" >&2
done
