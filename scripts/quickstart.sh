#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine with Node 20, as root: installs what is missing,
# then runs the broker on its embedded defaults and prints where to log in.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v redis-server >/dev/null || redis-cli -u "${VDI_REDIS_URL:-redis://127.0.0.1:6379}" ping >/dev/null 2>&1 || need+=(redis-server)
# the embedded hypervisor and what the demo golden image is built from
for p in qemu-system-x86 qemu-utils linux-image-amd64 busybox-static e2fsprogs cpio kmod; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# the broker-run smbd that serves users' folders to the desktops (users are not system accounts)
# (socat: QEMU's guest forwards run it per guest connection to reach smbd; docs/qemu.md)
for p in samba libnss-wrapper socat; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "missing: ${need[*]}. Install with: apt-get install -y ${need[*]}" >&2
    exit 3
  fi
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
# the web client, built once (client/dist)
[ -f client/dist/index.html ] || npm run -s build:client
# Fewer glibc arenas and a fixed mmap threshold keep idle tunnels small (docs/gateway.md).
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-1048576}
exec node --no-allocation-site-pretenuring --max-semi-space-size=32 --import tsx server/quickstart.ts "$@"
