#!/usr/bin/env bash
# The whole test suite (`npm test`). On a fresh Debian 12 machine, as root, it first installs
# what the tests need (Debian packages, npm packages) and starts a Redis if none answers.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(redis-server redis-tools qemu-system-x86 qemu-utils tigervnc-standalone-server tigervnc-tools x11-xserver-utils
      linux-image-amd64 busybox-static e2fsprogs cpio kmod chromium samba smbclient libnss-wrapper libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients xrdp
      openssh-server openssh-client netcat-openbsd slapd ldap-utils openssl socat qemu-guest-agent
      haproxy redis-sentinel docker.io docker-compose debootstrap prometheus yamllint libx11-dev libxft-dev fonts-dejavu-core x11-utils iptables gcc)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing test prerequisites: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 3
  fi
fi
# Installed once, and again whenever package-lock.json changed since (new dependencies).
if [ ! -x node_modules/.bin/tsx ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi

# The tests' shared Redis (each test uses its own key prefix); tests that stop Redis start their own.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  mkdir -p /tmp/vdi-test-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir /tmp/vdi-test-redis
  for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

npx tsc -p tsconfig.json --noEmit
npx tsc -p client/tsconfig.json --noEmit
# The web client the broker serves at / (test/client drives it in Chromium).
npx vite build --config client/vite.config.ts --logLevel warn
# Two lanes at once: the files that boot VMs one after another, everything else beside them.
exec node scripts/run-tests.mjs "$@"
