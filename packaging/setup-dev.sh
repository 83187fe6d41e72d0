#!/usr/bin/env bash
# Installs everything a checkout needs to run the mesh and its tests on Debian, as root:
# system tools from apt (only those missing), npm packages from the lockfile, then the build.
set -euo pipefail
cd "$(dirname "$0")/.."

need_node_major=20
need_node_minor=19
node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  local v major minor
  v=$(node -p 'process.versions.node')
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  [ "$major" -gt "$need_node_major" ] || { [ "$major" -eq "$need_node_major" ] && [ "$minor" -ge "$need_node_minor" ]; }
}

# Tools the tests and the demo use; ip/iptables/nft manage the simulated hosts' network namespaces.
# wrk and nginx are the benchmark's load generator and reference proxy (`npm run bench` starts its
# own nginx with a private config; the system service is never started).
declare -A tool_package=(
  [ip]=iproute2 [iptables]=iptables [nft]=nftables [conntrack]=conntrack [ping]=iputils-ping
  [curl]=curl [setpriv]=util-linux [taskset]=util-linux [make]=make [g++]=g++ [python3]=python3
  [wrk]=wrk [nginx]=nginx
)
missing=()
for tool in "${!tool_package[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${tool_package[$tool]}")
done
node_ok || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${missing[*]}; run this script as root so it can apt-get install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian starts a packaged service on install; the benchmark runs its own nginx, so the system
  # one must stay stopped. policy-rc.d answering 101 ("forbidden") is Debian's switch for that.
  if [[ " ${missing[*]} " == *" nginx "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! node_ok; then
  echo "setup: Node.js >= ${need_node_major}.${need_node_minor} is required, found $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi

# npm builds the native addon against the headers of the Node it runs on (no download).
export npm_config_nodedir="${npm_config_nodedir:-$(dirname "$(dirname "$(command -v node)")")}"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
echo "setup: done"
