#!/bin/sh
# Builds one pinned Go module's commands into the machine cache, once.
#   build.sh <module dir under kube-build> <version stamp> <package>...
# Output: $CVM_K8S_CACHE/bin/<command> and <command>.version (the stamp), so a
# later run with the same pin does nothing and a new pin rebuilds.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
module="$here/$1"; stamp="$2"; shift 2
cache="${CVM_K8S_CACHE:-/var/cache/cvm/k8s}"
go="${GO:-/usr/local/go/bin/go}"
mkdir -p "$cache/bin" "$cache/gocache" "$cache/gomodcache"
# A shared machine: two compile jobs, caches outside the clone.
export GOFLAGS="-p=2 -mod=mod" GOMAXPROCS=2 GOCACHE="$cache/gocache" \
  GOMODCACHE="$cache/gomodcache" GOTOOLCHAIN=local CGO_ENABLED=0
ldflags="-s -w"
case "$stamp" in
v1.*) for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $p.gitVersion=$stamp -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$stamp" | cut -d. -f2) -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done ;;
esac
cd "$module"
tmp="$cache/bin/.build-$$"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
"$go" build -trimpath -ldflags "$ldflags" -o "$tmp/" "$@"
for f in "$tmp"/*; do
  name=$(basename "$f")
  mv -f "$f" "$cache/bin/$name"
  echo "$stamp" > "$cache/bin/$name.version"
done
