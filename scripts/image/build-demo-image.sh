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
#   - mounts a 9p share tagged "home" at /home/user when one is passed in;
#   - shows a banner and a shell on tty1, a shell on ttyS0, counts seconds in /run/counter;
#   - powers off on the ACPI power button (busybox acpid + init).
set -euo pipefail

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
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,run,tmp,data,home/user,lib/modules,etc/acpi/PWRF,usr/bin,usr/sbin,root}
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$ROOT/bin/busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "$ROOT/bin/$applet"
done
ln -sf ../bin/busybox "$ROOT/sbin/init"
ln -sf bin/busybox "$ROOT/init"

# Kernel modules the guest needs, with their dependencies, in load order.
WANT="virtio_pci virtio_blk virtio_net 9pnet_virtio 9p crc32c_generic ext4 button evdev qemu_fw_cfg"
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

cat > "$ROOT/etc/inittab" <<'EOF'
::sysinit:/etc/rc.sysinit
tty1::respawn:/etc/desktop.sh
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
if grep -qs '^home' /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag; then
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 home /home/user || echo "vdi: cannot mount the home share" > /dev/console
fi
ip link set lo up 2>/dev/null; ip link set eth0 up 2>/dev/null
acpid -c /etc/acpi -l /run/acpid.log -p /run/acpid.pid
( c=0; while :; do c=$((c+1)); echo $c > /run/counter; sleep 1; done ) &
cat /proc/sys/kernel/random/boot_id > /run/boot-id
echo "VDI-READY name=$NAME" > /run/ready
echo "VDI-READY name=$NAME" > /dev/ttyS0
EOF

cat > "$ROOT/etc/rc.shutdown" <<'EOF'
#!/bin/sh
echo "VDI-POWEROFF" > /dev/ttyS0
sync
umount /home/user 2>/dev/null
umount /data 2>/dev/null
EOF

cat > "$ROOT/etc/desktop.sh" <<'EOF'
#!/bin/sh
NAME="$(cat /run/vdi-name 2>/dev/null)"
clear
echo "+----------------------------------------------------------+"
echo "|  vdi-broker demo desktop                                 |"
echo "+----------------------------------------------------------+"
echo
echo "  Desktop : $NAME"
echo "  Kernel  : $(uname -r)"
echo "  Booted  : $(date -u)"
echo "  Data    : /data ($(df -h /data 2>/dev/null | awk 'NR==2{print $2}'))"
echo "  Home    : /home/user $(grep -q ' /home/user ' /proc/mounts && echo '(share mounted)' || echo '(no share)')"
echo
exec /bin/sh -l
EOF

# ACPI power button: busybox acpid maps it to "PWRF 00000080" and runs /etc/acpi/PWRF/00000080.
cat > "$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
/bin/poweroff
EOF
cp "$ROOT/etc/acpi/PWRF/00000080" "$ROOT/etc/acpi/power.sh"
echo "PWRF power.sh" > "$ROOT/etc/acpid.conf"
chmod +x "$ROOT"/etc/rc.sysinit "$ROOT"/etc/rc.shutdown "$ROOT"/etc/desktop.sh "$ROOT"/etc/acpi/PWRF/00000080 "$ROOT"/etc/acpi/power.sh
echo 'root:x:0:0:root:/root:/bin/sh' > "$ROOT/etc/passwd"
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
