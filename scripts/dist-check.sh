#!/usr/bin/env bash
# Check a release tarball as a user gets it: its .sha256 matches; everything is under one
# folder; the top level is exactly bin appspec completions docs INSTALL man README.md templates; the
# files a user needs are there (bin/* executable); and, unpacked with no toolchain involved,
# its own bin/nonstop names its version and builds a bundle of JAR with the templates.
# Usage: scripts/dist-check.sh TARBALL JAR
set -euo pipefail
tarball=$1 jar=$2
file=$(basename "$tarball")
name=${file%.tar.gz}
version=${name#nonstop-}
version=${version%-x86_64-linux}
(cd "$(dirname "$tarball")" && sha256sum -c --quiet "$file.sha256")
list=$(tar -tzf "$tarball")
fail() { echo "dist-check: $file: $*" >&2; exit 1; }
outside=$(grep -v "^$name/" <<< "$list" || true)
[ -z "$outside" ] || fail "entries outside $name/: $outside"
top=$(sed -n "s|^$name/\([^/][^/]*\).*|\1|p" <<< "$list" | sort -u | tr '\n' ' ')
[ "$top" = "INSTALL README.md appspec bin completions docs man templates " ] || fail "top level is: $top"
for f in bin/stop bin/start bin/health bin/switch bin/deploy-second bin/nonstop \
  appspec/appspec.yml appspec/appspec-balanced.yml \
  templates/nonstop.yml templates/Jenkinsfile templates/github-workflow.yml \
  templates/Jenkinsfile.ssh templates/github-workflow-ssh.yml \
  templates/nginx/site.conf templates/nginx/service-url.inc templates/nginx/upstream.conf \
  completions/nonstop.bash completions/_nonstop completions/nonstop.fish \
  man/nonstop.1 man/nonstop-bundle.1 man/nonstop-deploy.1 INSTALL README.md \
  docs/configuration.md docs/troubleshooting.md; do
  grep -qx "$name/$f" <<< "$list" || fail "lacks $f"
done
bad=$(tar -tvzf "$tarball" | awk -v n="$name/bin/" 'index($6, n) == 1 && $6 != n && $1 != "-rwxr-xr-x" {print $6}')
[ -z "$bad" ] || fail "not 0755: $bad"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tarball" -C "$tmp"
root="$tmp/$name"
"$root/bin/nonstop" --version | grep -q "^nonstop $version (commit " || fail "bin/nonstop --version: $("$root/bin/nonstop" --version)"
"$root/bin/nonstop" bundle --jar "$jar" --config "$root/templates/nonstop.yml" \
  --appspec "$root/appspec/appspec.yml" -o "$tmp/bundle.zip" > "$tmp/bundle.out"
tail -n 1 "$tmp/bundle.out" >&2
echo "dist-check: $file: $(wc -l <<< "$list") entries, $(stat -c %s "$tarball") bytes; its bin/nonstop builds a bundle" >&2
