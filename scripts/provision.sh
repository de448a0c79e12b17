#!/usr/bin/env bash
# Installs the Debian packages cvm and its tests need, only those missing.
# Used by the quickstart and by CI; a no-op on a machine that has them all.
set -euo pipefail

# containerd, runc, containernetworking-plugins, jq: the tests' real Kubernetes node.
# qemu: the cgroup v2 node VM tests (they skip, saying why, where it is absent).
# openssh-client, rsync: the SSH tests drive the real ssh, scp, sftp and rsync through `ssh NAME.cvm`.
# lxcfs: CVMs see their own memory, CPUs and uptime in /proc (src/supervisor/lxcfs.ts).
# python3-venv: the API fuzz test installs schemathesis from PyPI into a virtualenv in the machine cache.
packages=(docker.io docker-registry runc containerd containernetworking-plugins jq mmdebstrap uidmap iptables postgresql chromium gcc libc6-dev etcd-server qemu-system-x86 qemu-utils python3-venv openssh-client rsync lxcfs)
if [ "${1:-}" = "--runtime-only" ]; then
  packages=(docker.io runc containerd mmdebstrap uidmap iptables gcc libc6-dev lxcfs)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "provision: missing Debian packages ${missing[*]}: run \`sudo bash scripts/provision.sh\` (root on Debian)" >&2
    exit 1
  fi
  echo "provision: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts its own services on install; cvm starts what it needs itself.
  for s in docker docker-registry postgresql etcd; do
    systemctl disable --now "$s" >/dev/null 2>&1 || service "$s" stop >/dev/null 2>&1 || true
  done
fi

# The remapped root of cvm's own engine: a subordinate uid/gid range.
if [ "$(id -u)" != 0 ]; then
  grep -q '^dockremap:' /etc/subuid 2>/dev/null ||
    { echo "provision: no dockremap range in /etc/subuid: run \`sudo bash scripts/provision.sh\`" >&2; exit 1; }
  exit 0
fi
grep -q '^dockremap:' /etc/passwd || useradd --system --no-create-home --shell /usr/sbin/nologin dockremap
grep -q '^dockremap:' /etc/subuid || echo 'dockremap:100000:65536' >>/etc/subuid
grep -q '^dockremap:' /etc/subgid || echo 'dockremap:100000:65536' >>/etc/subgid
