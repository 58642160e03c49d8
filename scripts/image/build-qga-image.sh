#!/usr/bin/env bash
# Builds a tiny golden image whose guest runs only Debian's qemu-guest-agent (no agent of ours):
# the kernel, a busybox initramfs with /usr/sbin/qemu-ga and the shared libraries ldd names, and
# an empty qcow2 disk. Used by test/agent/qga.test.ts to prove readiness through qga.
#
#   scripts/image/build-qga-image.sh OUTPUT_DIR
#
# Output: vmlinuz, initrd.img, disk.qcow2, manifest.json ("agent": "qga"). Needs the Debian
# packages qemu-guest-agent, busybox-static, linux-image-amd64, qemu-utils, cpio.
set -euo pipefail

OUT="${1:?usage: build-qga-image.sh OUTPUT_DIR}"
KVER="${KVER:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -n1)}"
BUSYBOX="${BUSYBOX:-$(command -v busybox || echo /bin/busybox)}"
QGA="${QGA:-/usr/sbin/qemu-ga}"
die() { echo "build-qga-image: $*" >&2; exit 1; }
[ -r "/boot/vmlinuz-$KVER" ] || die "no readable /boot/vmlinuz-* (apt-get install linux-image-amd64)"
[ -x "$QGA" ] || die "$QGA not found (apt-get install qemu-guest-agent)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked (apt-get install busybox-static)"; fi
for t in qemu-img cpio gzip modinfo ldd; do command -v "$t" >/dev/null || die "$t not found"; done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/initramfs"
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,run,tmp,var,lib/modules,usr/sbin,root}
ln -s ../run "$ROOT/var/run"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$ROOT/bin/busybox" --list); do [ "$applet" = busybox ] || ln -sf busybox "$ROOT/bin/$applet"; done
ln -sf ../bin/busybox "$ROOT/sbin/init"
ln -sf bin/busybox "$ROOT/init"
# qemu-ga and the libraries it loads (paths as ldd resolves them, plus the loader).
cp "$QGA" "$ROOT/usr/sbin/qemu-ga"
for lib in $(ldd "$QGA" | awk '/=>/ { print $3 } /^\t\// { print $1 }'); do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
mods=()
for m in virtio_pci virtio_console qemu_fw_cfg; do
  f="$(modinfo -k "$KVER" -F filename "$m" 2>/dev/null || true)"
  case "$f" in ''|'(builtin)'|builtin*) continue ;; esac
  for dep in $(modinfo -k "$KVER" -F depends "$m" | tr ',' ' '); do
    df="$(modinfo -k "$KVER" -F filename "$dep")"
    case "$df" in *.ko.xz) xz -dc "$df" > "$ROOT/lib/modules/$dep.ko" ;; *) cp "$df" "$ROOT/lib/modules/$dep.ko" ;; esac
    mods+=("$dep")
  done
  case "$f" in *.ko.xz) xz -dc "$f" > "$ROOT/lib/modules/$m.ko" ;; *) cp "$f" "$ROOT/lib/modules/$m.ko" ;; esac
  mods+=("$m")
done
printf '%s\n' "${mods[@]}" > "$ROOT/etc/modules.order"

cat > "$ROOT/etc/inittab" <<'IT'
::sysinit:/etc/rc.sysinit
::respawn:/etc/qga.sh
tty1::respawn:/bin/login -f root
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/bin/reboot
IT
cat > "$ROOT/etc/rc.sysinit" <<'RC'
#!/bin/sh
export PATH=/bin:/sbin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs run /run
: > /run/utmp
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
echo "VDI-QGA-BOOTED" > /dev/ttyS0
RC
cat > "$ROOT/etc/qga.sh" <<'QS'
#!/bin/sh
# qemu-guest-agent on its virtio-serial port (found by name: no udev here).
PATH=/bin:/sbin:/usr/sbin
port=""
for n in /sys/class/virtio-ports/*/name; do
  [ "$(cat "$n" 2>/dev/null)" = org.qemu.guest_agent.0 ] && port="/dev/$(basename "$(dirname "$n")")"
done
[ -n "$port" ] || { sleep 1; exit 1; }
exec /usr/sbin/qemu-ga -m virtio-serial -p "$port" -t /run
QS
chmod +x "$ROOT/etc/rc.sysinit" "$ROOT/etc/qga.sh"
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOT/etc/passwd"
echo 'root:x:0:' > "$ROOT/etc/group"
echo 'root::0:0:99999:7:::' > "$ROOT/etc/shadow"
printf 'NAME="vdi qga test image"\nID=vdi-qga\nVERSION_ID=1\nPRETTY_NAME="vdi qga test image"\n' > "$ROOT/etc/os-release"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cp "/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet | gzip -6) > "$OUT/initrd.img"
qemu-img create -q -f qcow2 "$OUT/disk.qcow2" 16M
cat > "$OUT/manifest.json" <<MF
{
  "name": "qga",
  "format": "vdi-demo-image/1",
  "version": 1,
  "agent": "qga",
  "bootGraceMs": 0,
  "kernelVersion": "$KVER",
  "cmdline": "console=tty0 console=ttyS0,115200 quiet"
}
MF
echo "built qga image in $OUT (kernel $KVER)"
