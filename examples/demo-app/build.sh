#!/usr/bin/env bash
# Build the demo app: build.sh OUT_DIR VERSION  ->  OUT_DIR/demo-app-VERSION.jar
# Needs only a JDK 17+ (javac, jar). The jar is written under a temporary name in OUT_DIR
# and renamed into place, so concurrent builders/readers never see a half-written jar.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 OUT_DIR VERSION" >&2
    exit 2
fi
out_dir=$1
version=$2
case "$version" in
    "" | */* | .*) echo "build.sh: bad VERSION '$version'" >&2; exit 2 ;;
esac

src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/src
mkdir -p "$out_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/demo-app-build.XXXXXX")
partial="$out_dir/.demo-app-$version.jar.$$.tmp"
trap 'rm -rf "$work"; rm -f "$partial"' EXIT

mkdir "$work/classes"
# -XDignore.symbol.file silences the "internal proprietary API" warning for sun.misc.Signal.
javac --release 17 -nowarn -XDignore.symbol.file -d "$work/classes" "$src_dir/DemoApp.java"
printf '%s\n' "$version" > "$work/classes/version.txt"
jar --create --file "$partial" --main-class DemoApp -C "$work/classes" .
mv -f "$partial" "$out_dir/demo-app-$version.jar"
echo "built $out_dir/demo-app-$version.jar"
