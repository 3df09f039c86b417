#!/usr/bin/env bash
# The release tarball: OUT_DIR/nonstop-VERSION-x86_64-linux.tar.gz and its .sha256, holding
# bin/ (every binary), appspec/, templates/, man/, completions/, INSTALL, README.md and docs/ under
# one folder nonstop-VERSION-x86_64-linux/. Reproducible: sorted, owner 0, mtime of the last
# commit, gzip without a timestamp. Usage: scripts/dist.sh BIN_DIR VERSION OUT_DIR BIN...
set -euo pipefail
bin_dir=$1 version=$2 out=$3
shift 3
name="nonstop-$version-x86_64-linux"
stage="$out/$name"
rm -rf "$stage" "$out/$name.tar.gz" "$out/$name.tar.gz.sha256"
mkdir -p "$stage/bin" "$stage/appspec"
for b in "$@"; do install -m 0755 "$bin_dir/$b" "$stage/bin/$b"; done
install -m 0644 appspec/*.yml "$stage/appspec/"
cp -R templates "$stage/templates"
scripts/completions.sh "$stage/bin/nonstop" "$stage"
install -m 0644 README.md "$stage/README.md"
cp -R docs "$stage/docs"
sed "s/@VERSION@/$version/g" scripts/INSTALL > "$stage/INSTALL"
find "$stage" -type d -exec chmod 0755 {} + && find "$stage" -type f ! -path "$stage/bin/*" -exec chmod 0644 {} +
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$out" -cf - "$name" \
  | gzip -n -9 > "$out/$name.tar.gz.tmp"
mv "$out/$name.tar.gz.tmp" "$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
rm -rf "$stage"
echo "dist: $out/$name.tar.gz ($(stat -c %s "$out/$name.tar.gz") bytes) and .sha256" >&2
