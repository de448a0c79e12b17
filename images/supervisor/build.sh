#!/bin/sh
# Builds the supervisor image CVM Pods run: Debian bookworm from Debian's
# packages (mmdebstrap), Docker's engine for the built-in runtime, Node.js 20,
# and this checkout of cvm, compiled (`npm run build -- dist`), with its
# production dependencies, whose `cvm supervisor` is the Pod's command.
#
#   images/supervisor/build.sh [TAG]           (default cvm-supervisor:0.1.0)
#   SYSBOX_DEB=/path/sysbox-ce.deb images/supervisor/build.sh   adds sysbox
#
# Node.js: bookworm's own is 18; cvm needs 20, so the build copies the build
# host's `node` (NODE=/path/to/node to choose another). The root filesystem
# tarball is written under the machine cache, never into the clone.
set -eu
tag="${1:-cvm-supervisor:0.1.0}"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
node_bin="${NODE:-$(command -v node)}"
cache="${CVM_CACHE_DIR:-/var/cache/cvm}/supervisor-image"
mkdir -p "$cache"
out="$cache/rootfs.tar"

case "$("$node_bin" --version)" in
v2[0-9].*|v[3-9][0-9].*) ;;
*) echo "build.sh: $node_bin is $("$node_bin" --version); cvm needs Node.js 20 or newer (set NODE)" >&2; exit 1 ;;
esac

# The application: the compiled JavaScript (dist/, which bin/cvm runs) and the
# production dependencies, staged outside the clone. The image holds no
# TypeScript sources and no tsx: `cvm supervisor` starts as compiled code.
(cd "$root" && npm run --silent build -- dist)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/opt/cvm"
(cd "$root" && tar -cf - package.json package-lock.json bin dist node_modules) | tar -xf - -C "$stage/opt/cvm"
# The checkout's installed modules (native ones built for this platform), less
# the development ones (esbuild, tsx, typescript): offline, no registry needed.
(cd "$stage/opt/cvm" && npm prune --omit=dev --offline --no-audit --no-fund >/dev/null)

mmdebstrap --variant=minbase --mode=root \
  --include=ca-certificates,docker.io,containerd,runc,iptables,kmod,procps,iproute2,passwd,uidmap,e2fsprogs,xz-utils,libstdc++6,lxcfs,fuse3 \
  --customize-hook="cp '$node_bin' \"\$1/usr/local/bin/node\"" \
  --customize-hook="cp -a '$stage/opt/cvm' \"\$1/opt/cvm\"" \
  --customize-hook='ln -s /opt/cvm/bin/cvm "$1/usr/local/bin/cvm"' \
  --customize-hook="cp '$here/daemon.json' \"\$1/etc/docker/daemon.json\"" \
  --customize-hook='chroot "$1" useradd --system --no-create-home --shell /usr/sbin/nologin dockremap' \
  --customize-hook='echo "dockremap:100000:65536" > "$1/etc/subuid"; echo "dockremap:100000:65536" > "$1/etc/subgid"' \
  ${SYSBOX_DEB:+--customize-hook="cp '$SYSBOX_DEB' \"\$1/tmp/sysbox.deb\" && chroot \"\$1\" dpkg -i /tmp/sysbox.deb; rm -f \"\$1/tmp/sysbox.deb\""} \
  --customize-hook='rm -rf "$1/var/cache/apt/archives"/*.deb "$1/var/lib/apt/lists"/*' \
  bookworm "$out"

docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENTRYPOINT ["cvm", "supervisor"]' \
  --change 'LABEL dev.cvm/component=supervisor' \
  "$out" "$tag"
echo "built $tag"
