#!/usr/bin/env bash
# Build the larger Spring Boot app: build.sh OUT_DIR VERSION  ->  OUT_DIR/spring-large-app-VERSION.jar,
# with the Spring Boot example's build script: the same Maven build, lock, temporary name and
# offline cache (the first build fetches JPA, Hibernate, Thymeleaf and H2 from Maven Central).
set -euo pipefail
if [ "$#" -ne 2 ]; then
    echo "usage: $0 OUT_DIR VERSION" >&2
    exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec bash "$here/../spring-boot-app/build.sh" "$1" "$2" "$here" spring-large-app
