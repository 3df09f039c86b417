#!/usr/bin/env bash
# Build the Spring Boot app: build.sh OUT_DIR VERSION  ->  OUT_DIR/spring-app-VERSION.jar
# (or another example's: build.sh OUT_DIR VERSION APP_DIR NAME  ->  OUT_DIR/NAME-VERSION.jar,
# APP_DIR's pom naming its jar NAME-${app.version} as this one does).
# Runs `mvn -B package -Dapp.version=VERSION` (Maven 3.8+, JDK 17) with its build folder at
# OUT_DIR/maven-VERSION, outside the source tree. The first build fetches the Spring Boot
# parent, the starters and Maven's plugins from Maven Central into ~/.m2 (Maven's local
# repository is the cache); once one build succeeded with this pom, later builds run offline
# (`-o`, no network at all) and fall back to the network only if the offline build fails (a
# wiped ~/.m2, a changed pom). Builders take a lock, and the jar is written under a temporary
# name and renamed into place, so concurrent builders never see a half-written jar.
set -euo pipefail

if [ "$#" -ne 2 ] && [ "$#" -ne 4 ]; then
    echo "usage: $0 OUT_DIR VERSION [APP_DIR NAME]" >&2
    exit 2
fi
out_dir=$1
version=$2
name=${4:-spring-app}
case "$version" in
    "" | */* | .* | *[!A-Za-z0-9._-]*) echo "build.sh: bad VERSION '$version'" >&2; exit 2 ;;
esac
case "$name" in
    "" | .* | *[!A-Za-z0-9._-]*) echo "build.sh: bad NAME '$name'" >&2; exit 2 ;;
esac
command -v mvn >/dev/null || { echo "build.sh: mvn (Maven 3.8+) is missing: scripts/deps.sh maven" >&2; exit 1; }

src=$(cd "${3:-$(dirname "${BASH_SOURCE[0]}")}" && pwd)
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
exec 9>"$out_dir/.build.lock"
flock 9

jar="$out_dir/$name-$version.jar"
build="$out_dir/maven-$version"
partial="$out_dir/.$name-$version.jar.$$.tmp"
trap 'rm -f "$partial"' EXIT
# The offline stamp names the pom's content: a changed pom may need new artifacts.
stamp="$out_dir/.fetched-$(sha256sum "$src/pom.xml" | cut -c1-16)"

# -q keeps the log short; a failure still prints Maven's errors. Tests are not part of it.
mvn_args=(-B -q -f "$src/pom.xml" -Dapp.version="$version" -Dapp.build.dir="$build"
          -DskipTests -Dmaven.test.skip=true package)
# Maven 3.8 with -q prints bare colour resets even in batch mode: strip escapes and empty lines.
mvn_quiet() { mvn "$@" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; }
t0=$(date +%s)
if [ -e "$stamp" ] && mvn_quiet -o "${mvn_args[@]}"; then
    how="offline"
else
    [ ! -e "$stamp" ] || echo "build.sh: the offline build failed; retrying with the network" >&2
    echo "build.sh: mvn -B package -Dapp.version=$version (fetching what ~/.m2 lacks from Maven Central)" >&2
    mvn_quiet "${mvn_args[@]}"
    touch "$stamp"
    how="online"
fi
# The boot jar (spring-boot:repackage), not the plain jar (.jar.original).
cp "$build/$name-$version.jar" "$partial"
mv -f "$partial" "$jar"
echo "built $jar ($how, $(( $(date +%s) - t0 )) s)"
