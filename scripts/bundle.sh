#!/usr/bin/env bash
# Assemble the CodeDeploy bundle: dist/bundle/{appspec.yml,nonstop.yml,bin/*,app/<jar>} and a zip.
# Fails if any binary needs a GLIBC symbol newer than the floor (Amazon Linux 2 has 2.26).
# Usage: scripts/bundle.sh BIN_DIR JAR CONFIG OUT_DIR GLIBC_FLOOR BIN...
set -euo pipefail
bin_dir=$1 jar=$2 config=$3 out=$4 floor=$5
shift 5
[ -f "$jar" ] || { echo "bundle: no jar at $jar" >&2; exit 2; }
[ -f "$config" ] || { echo "bundle: no config at $config" >&2; exit 2; }
for b in "$@"; do
  f="$bin_dir/$b"
  [ -x "$f" ] || { echo "bundle: missing binary $f" >&2; exit 1; }
  newest=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$floor" "$newest" | sort -V | tail -n1)" != "$floor" ]; then
    echo "bundle: $b needs GLIBC_$newest, newer than $floor: it would not run on Amazon Linux 2" >&2
    exit 1
  fi
  echo "bundle: $b needs at most GLIBC_${newest:-none} (floor $floor)" >&2
done
rm -rf "$out/bundle" "$out/nonstop-bundle.zip"
mkdir -p "$out/bundle/bin" "$out/bundle/app"
for b in "$@"; do install -m 0755 "$bin_dir/$b" "$out/bundle/bin/$b"; done
install -m 0644 "${APPSPEC:-appspec/appspec.yml}" "$out/bundle/appspec.yml"
install -m 0644 "$config" "$out/bundle/nonstop.yml"
install -m 0644 "$jar" "$out/bundle/app/$(basename "$jar")"
if command -v zip >/dev/null 2>&1; then
  (cd "$out/bundle" && zip -q -r -X ../nonstop-bundle.zip .)
else
  python3 - "$out" <<'PY'
import os, sys, zipfile
out = sys.argv[1]
root = os.path.join(out, "bundle")
with zipfile.ZipFile(os.path.join(out, "nonstop-bundle.zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in os.walk(root):
        for f in sorted(files):
            p = os.path.join(d, f)
            info = zipfile.ZipInfo.from_file(p, os.path.relpath(p, root))
            with open(p, "rb") as fh:
                z.writestr(info, fh.read(), zipfile.ZIP_DEFLATED)
PY
fi
echo "bundle: $out/bundle and $out/nonstop-bundle.zip ($(du -h "$out/nonstop-bundle.zip" | cut -f1))" >&2
