#!/usr/bin/env bash
# `npm run quickstart`: on a fresh Debian machine, install what is missing,
# start cvm with its embedded defaults (SQLite, the local engine), and end with
# a running CVM named `dev`, the dashboard's URL and the first admin's login.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

data_dir=${CVM_DATA_DIR:-/var/lib/cvm}
listen=${CVM_LISTEN:-127.0.0.1:7080}
url="http://$listen"
admin_email=${CVM_ADMIN_EMAIL:-admin@cvm.local}
secrets="$data_dir/quickstart-admin.txt"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing what is missing (Debian packages, npm dependencies)"
bash scripts/provision.sh
bash scripts/npm-dependencies.sh
ln -sf "$root/bin/cvm" /usr/local/bin/cvm

step "Building cvm (the compiled CLI and server in dist/, the dashboard in web/dist)"
npm run --silent build

step "Starting the host's Docker engine and building the CVM image from Debian's packages"
node --import tsx scripts/dev-services.ts
image=$(node --import tsx images/build.ts debian-systemd-docker | awk '/debian-systemd-docker/ {print $1}' | tail -n 1)
echo "image: $image"

step "Starting cvm server on $url (data in $data_dir)"
mkdir -p "$data_dir"
# Traversable (not listable) by the remapped root that runs CVMs; everything inside stays root-only.
chmod 711 "$data_dir"
# The log holds users' emails and the first-run setup code: owner-only, like everything else in the data dir.
touch "$data_dir/server.log"
chmod 600 "$data_dir/server.log"
if ! curl -fsS "$url/healthz" >/dev/null 2>&1; then
  nohup cvm server --listen "$listen" --data-dir "$data_dir" >>"$data_dir/server.log" 2>&1 &
  for _ in $(seq 1 100); do curl -fsS "$url/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
fi
curl -fsS "$url/healthz" >/dev/null || { echo "cvm server did not start; see $data_dir/server.log"; exit 1; }

step "Signing in as the first site admin"
if [ ! -f "$secrets" ]; then
  umask 077
  printf '%s\n' "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >"$secrets"
fi
password=$(cat "$secrets")
# A fresh install's first account needs the one-time setup code the server printed in its log
# (the line may land a moment after the server answers).
setup_code=""
if curl -fsS "$url/api/v1/setup" | grep -q '"needsFirstAdmin":true'; then
  for _ in $(seq 1 50); do
    setup_code=$(grep -o '"setupCode":"[^"]*"' "$data_dir/server.log" | tail -n 1 | cut -d '"' -f 4 || true)
    [ -n "$setup_code" ] && break
    sleep 0.1
  done
fi
# The password goes by the environment, not the command line, where ps would show it.
CVM_PASSWORD="$password" CVM_SETUP_CODE="$setup_code" cvm login "$url" --email "$admin_email"

step "Enabling container-based virtual machines"
cvm admin infra set --cvm enabled

step "Creating the CVM 'dev'"
if cvm env show dev >/dev/null 2>&1; then
  cvm env start dev >/dev/null 2>&1 || true
else
  cvm env create dev --image "$image" --cvm --follow
fi
cvm ssh dev -- docker run --rm cvm/hello echo "docker inside dev: ok"

cat <<DONE

cvm is running.
  Dashboard:  $url
  Login:      $admin_email
  Password:   $password   (also in $secrets)
  CLI:        configured; try  cvm env list   and   cvm ssh dev
  Server log: $data_dir/server.log
DONE
