#!/usr/bin/env bash
# Builds the demo golden image from Debian packages only (linux-image-amd64, busybox-static,
# e2fsprogs, qemu-utils, cpio): a kernel, a busybox initramfs that shows a text-mode "desktop"
# on the VGA console, and a small ext4 data disk as a qcow2 base for linked clones.
#
#   scripts/image/build-demo-image.sh [OUTPUT_DIR]      (default: data/images/demo/1)
#
# Output: vmlinuz, initrd.img, disk.qcow2, manifest.json. Nothing is mounted, no root needed
# beyond reading /boot. The guest:
#   - reads its desktop name from the kernel command line (vdi.name=) or fw_cfg opt/vdi/name;
#   - mounts the virtio disk /dev/vda at /data (changes land in the desktop's overlay);
#   - runs our guest agent (scripts/image/guest/agent.sh, docs/agent.md) on the virtio-serial
#     port org.vdibroker.agent.0, with the logon/logoff/message hooks from scripts/image/guest/
#     (copied to /etc/vdi/): the user's folder is mounted over SMB at logon, no reboot;
#   - brings eth0 up as 10.0.2.15/24 (gateway 10.0.2.2; QEMU user networking) so it reaches the
#     host services the driver forwards (guestForwards), nothing else;
#   - shows a banner and a shell on tty1 (as the logged-on user, in their home, once the agent
#     logged one on), a shell on ttyS0, counts seconds in /run/counter;
#   - powers off on the ACPI power button (busybox acpid + init).
# IMAGE_VERSION below goes into manifest.json ("version"); the quick start rebuilds the image
# when it differs from the built one: bump it with every change of the guest.
set -euo pipefail

IMAGE_VERSION=10
# How long after its console answers a guest without an agent is taken as up (ours has one).
BOOT_GRACE_MS=0
HERE="$(cd "$(dirname "$0")" && pwd)"
GUEST="$HERE/guest"

OUT="${1:-data/images/demo/1}"
KVER="${KVER:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -n1)}"
BUSYBOX="${BUSYBOX:-$(command -v busybox || echo /bin/busybox)}"
DISK_MB="${DISK_MB:-64}"

die() { echo "build-demo-image: $*" >&2; exit 1; }
[ -n "$KVER" ] && [ -r "/boot/vmlinuz-$KVER" ] || die "no readable /boot/vmlinuz-* (apt-get install linux-image-amd64)"
[ -d "/lib/modules/$KVER" ] || die "no /lib/modules/$KVER"
[ -x "$BUSYBOX" ] || die "busybox not found (apt-get install busybox-static)"
# The initramfs has no libc: busybox must be static (ldd fails on static binaries).
if ldd "$BUSYBOX" >/dev/null 2>&1; then die "$BUSYBOX is dynamically linked (apt-get install busybox-static)"; fi
for t in mke2fs qemu-img cpio gzip sha256sum modinfo; do command -v "$t" >/dev/null || die "$t not found"; done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/initramfs"
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,run,tmp,data,home,lib/modules,etc/acpi/PWRF,etc/vdi,usr/bin,usr/sbin,root}
# Users logged on by the agent are not root: /tmp is theirs too (sticky, world-writable).
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$ROOT/bin/busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "$ROOT/bin/$applet"
done
ln -sf ../bin/busybox "$ROOT/sbin/init"
ln -sf bin/busybox "$ROOT/init"

# Kernel modules the guest needs, with their dependencies, in load order.
WANT="virtio_pci virtio_blk virtio_net virtio_console crc32c_generic ext4 button evdev qemu_fw_cfg"
ORDER=()
declare -A SEEN=()
add_mod() {
  local m="$1" dep
  [ -n "${SEEN[$m]:-}" ] && return 0
  SEEN[$m]=1
  local file
  file="$(modinfo -k "$KVER" -F filename "$m" 2>/dev/null || true)"
  case "$file" in ''|'(builtin)'|builtin*) return 0 ;; esac
  for dep in $(modinfo -k "$KVER" -F depends "$m" | tr ',' ' '); do add_mod "$dep"; done
  ORDER+=("$m")
  case "$file" in
    *.ko.xz) xz -dc "$file" > "$ROOT/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$file" > "$ROOT/lib/modules/$m.ko" ;;
    *) cp "$file" "$ROOT/lib/modules/$m.ko" ;;
  esac
}
for m in $WANT; do add_mod "$m"; done
printf '%s\n' "${ORDER[@]}" > "$ROOT/etc/modules.order"
# The SMB client (cifs and the crypto it needs), one module a line in guest/modules-smb; loaded
# at boot after the others, before the agent's hello, and by logon.sh again if that failed (/etc/modules-smb.order).
ORDER=()
for m in $(grep -v '^[[:space:]]*#' "$GUEST/modules-smb" 2>/dev/null); do add_mod "$m"; done
printf '%s\n' "${ORDER[@]}" > "$ROOT/etc/modules-smb.order"

# The guest agent and its hooks.
for f in agent.sh session.sh logon.sh logoff.sh message.sh user-profile; do
  [ -r "$GUEST/$f" ] || die "missing $GUEST/$f"
  cp "$GUEST/$f" "$ROOT/etc/vdi/$f"
done
chmod 0755 "$ROOT"/etc/vdi/*.sh

cat > "$ROOT/etc/inittab" <<'EOF'
::sysinit:/etc/rc.sysinit
tty1::respawn:/etc/vdi/session.sh
::respawn:/etc/vdi/agent.sh
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/bin/reboot
::shutdown:/etc/rc.shutdown
EOF

cat > "$ROOT/etc/rc.sysinit" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs run /run
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
mkdir -p /run/vdi && chmod 0700 /run/vdi
NAME=""
for w in $(cat /proc/cmdline); do case "$w" in vdi.name=*) NAME="${w#vdi.name=}" ;; esac; done
if [ -z "$NAME" ] && [ -r /sys/firmware/qemu_fw_cfg/by_name/opt/vdi/name/raw ]; then
  NAME="$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/vdi/name/raw)"
fi
[ -n "$NAME" ] || NAME=demo-desktop
echo "$NAME" > /run/vdi-name
hostname "$NAME"
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
if [ -b /dev/vda ]; then mount -t ext4 /dev/vda /data || echo "vdi: cannot mount /dev/vda" > /dev/console; fi
ip link set lo up 2>/dev/null
# QEMU user networking: the guest is 10.0.2.15, the host's forwards are on 10.0.2.0/24.
ip link set eth0 up 2>/dev/null && ip addr add 10.0.2.15/24 dev eth0 2>/dev/null && ip route add default via 10.0.2.2 2>/dev/null
# The SMB client's modules load before the agent starts (init runs the agent after this
# script): ready means ready for the user, so the first logon is as fast as later ones.
for m in $(cat /etc/modules-smb.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid
( c=0; while :; do c=$((c+1)); echo $c > /run/counter; sleep 1; done ) &
cat /proc/sys/kernel/random/boot_id > /run/boot-id
echo "VDI-READY name=$NAME" > /run/ready
echo "VDI-READY name=$NAME" > /dev/ttyS0
EOF

cat > "$ROOT/etc/rc.shutdown" <<'EOF'
#!/bin/sh
echo "VDI-POWEROFF" > /dev/ttyS0
# Tell the broker (through the agent) before anything stops.
timeout 2 sh -c "printf '%s\n' '{\"v\":1,\"type\":\"event\",\"event\":\"poweroff\"}' > /run/vdi/events.fifo" 2>/dev/null
VDI_USER="" /etc/vdi/logoff.sh --all >/dev/null 2>&1
sync
umount /data 2>/dev/null
EOF

# ACPI power button: busybox acpid maps it to "PWRF 00000080" and runs /etc/acpi/PWRF/00000080.
cat > "$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
/bin/poweroff
EOF
cp "$ROOT/etc/acpi/PWRF/00000080" "$ROOT/etc/acpi/power.sh"
echo "PWRF power.sh" > "$ROOT/etc/acpid.conf"
chmod +x "$ROOT"/etc/rc.sysinit "$ROOT"/etc/rc.shutdown "$ROOT"/etc/acpi/PWRF/00000080 "$ROOT"/etc/acpi/power.sh
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOT/etc/passwd"
echo 'root:x:0:' > "$ROOT/etc/group"
echo 'export PATH=/bin:/sbin PS1="\h# "' > "$ROOT/etc/profile"

# Data disk: the part of the desktop that lives in the overlay.
DISKROOT="$WORK/disk"
mkdir -p "$DISKROOT"
cat > "$DISKROOT/README" <<'EOF'
This is the demo golden image's data disk (/data). Changes written here live in the
desktop's copy-on-write overlay: a refresh or a snapshot revert throws them away.
EOF
date -u +%Y-%m-%dT%H:%M:%SZ > "$DISKROOT/image-built"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TMPOUT="$(mktemp -d "$OUT/.build.XXXXXX")"
cp "/boot/vmlinuz-$KVER" "$TMPOUT/vmlinuz"
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --quiet | gzip -6) > "$TMPOUT/initrd.img"
mke2fs -q -F -t ext4 -L vdi-data -d "$DISKROOT" "$WORK/disk.raw" "${DISK_MB}M" >/dev/null
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$TMPOUT/disk.qcow2"
chmod 0444 "$TMPOUT/vmlinuz" "$TMPOUT/initrd.img" "$TMPOUT/disk.qcow2"

sum() { sha256sum "$1" | cut -d' ' -f1; }
cat > "$TMPOUT/manifest.json" <<EOF
{
  "name": "demo",
  "format": "vdi-demo-image/1",
  "version": $IMAGE_VERSION,
  "agent": "vdi",
  "bootGraceMs": $BOOT_GRACE_MS,
  "created": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "kernelVersion": "$KVER",
  "cmdline": "console=tty0 console=ttyS0,115200 quiet",
  "files": {
    "kernel": { "path": "vmlinuz", "sha256": "$(sum "$TMPOUT/vmlinuz")" },
    "initrd": { "path": "initrd.img", "sha256": "$(sum "$TMPOUT/initrd.img")" },
    "disk": { "path": "disk.qcow2", "format": "qcow2", "sha256": "$(sum "$TMPOUT/disk.qcow2")" }
  }
}
EOF
# Replace atomically-ish: files move into place, then the manifest last (its presence means done).
rm -f "$OUT/manifest.json"
for f in vmlinuz initrd.img disk.qcow2; do rm -f "$OUT/$f"; mv "$TMPOUT/$f" "$OUT/$f"; done
mv "$TMPOUT/manifest.json" "$OUT/manifest.json"
rmdir "$TMPOUT"
echo "built demo image in $OUT (kernel $KVER)"
