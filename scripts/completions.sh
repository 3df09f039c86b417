#!/usr/bin/env bash
# Shell completions and man pages for `nonstop`, generated from its clap definitions.
# Usage: scripts/completions.sh NONSTOP_BIN OUT_DIR
#   -> OUT_DIR/completions/{nonstop.bash,_nonstop,nonstop.fish} and OUT_DIR/man/nonstop*.1
set -euo pipefail
bin=$1 out=$2
mkdir -p "$out/completions" "$out/man"
"$bin" completions bash > "$out/completions/nonstop.bash"
"$bin" completions zsh > "$out/completions/_nonstop"
"$bin" completions fish > "$out/completions/nonstop.fish"
"$bin" man "$out/man" > /dev/null
