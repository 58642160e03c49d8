#!/bin/sh
# Logs a user on to the demo guest (docs/shares.md, docs/agent.md): logs off whoever was on
# before (their folder unmounted), makes the user known (passwd entry, uid 1000), and mounts
# their folder over SMB at /home/<user>. Called by the agent (agent.sh) for `logon` with:
#
#   VDI_USER          login name, as the broker maps it: [a-z0-9_.-] or "~" + hex (folderName)
#   VDI_DISPLAY       display name (for the passwd entry and the banner)
#   VDI_SMB_HOST VDI_SMB_PORT VDI_SMB_SHARE VDI_SMB_USERNAME VDI_SMB_PASSWORD
#                     the user's folder (all empty: no folder to mount)
#
# The password reaches the kernel from a 0600 fstab-format file that `mount -T` reads, never
# from a command line (/proc/*/cmdline is world-readable); the file is removed once mounted.
# Prints `home=/home/<user>`, `mounted=1|0` and `ms=<time this logon took>`; exit 0 when the user is on
# (and, when a folder was given, it is mounted and usable), else non-zero with a reason on stderr.
PATH=/bin:/sbin
UID_USER=1000
STATE=/run/vdi
u="${VDI_USER:-}"
fail() { echo "$*" >&2; exit 1; }
# Milliseconds since boot into $ms (no subshell).
now_ms() { read -r up rest < /proc/uptime; ms="${up%.*}${up#*.}0"; ms=$((10#$ms)); }
now_ms; t0=$ms

case "$u" in ''|.*|-*|*[!a-z0-9_.~-]*) fail "bad user name" ;; esac
[ "${#u}" -le 251 ] || fail "user name too long"
# Shell builtins where they do: under TCG every process costs tens of ms.
display="${VDI_DISPLAY:-$u}"
display="${display//[:\\$'\r\n']/}"
display="${display:0:64}"
home="/home/$u"

# Whoever was on before is logged off first: their folder is never left mounted. A warm spare
# (nobody on, no SMB mount) skips it.
busy=""
[ -s "$STATE/user" ] && busy=1
while read -r dev dir fs rest; do [ "$fs" = cifs ] && busy=1; done < /proc/mounts
[ -z "$busy" ] || VDI_USER="" /etc/vdi/logoff.sh --all >/dev/null

[ -d "$STATE" ] || { mkdir -p "$STATE" && chmod 0700 "$STATE"; }
# The passwd and group entries of uid $UID_USER are replaced by the user's.
pw=""
while IFS=: read -r n x id rest; do [ "$id" = "$UID_USER" ] || pw="$pw$n:$x:$id:$rest
"; done < /etc/passwd
printf '%s%s\n' "$pw" "$u:x:$UID_USER:$UID_USER:$display:$home:/bin/sh" > /etc/passwd
gr=""
while IFS=: read -r n x id rest; do [ "$id" = "$UID_USER" ] || gr="$gr$n:$x:$id:$rest
"; done < /etc/group
printf '%s%s\n' "$gr" "$u:x:$UID_USER:" > /etc/group
[ -d "$home" ] || mkdir -p "$home"

mounted=0
if [ -n "${VDI_SMB_HOST:-}" ]; then
  for v in "$VDI_SMB_HOST" "${VDI_SMB_PORT:-445}" "${VDI_SMB_SHARE:-}" "${VDI_SMB_USERNAME:-}" "${VDI_SMB_PASSWORD:-}"; do
    case "$v" in ''|*[!A-Za-z0-9_.~-]*) fail "bad SMB parameter" ;; esac
  done
  # cifs and its crypto are loaded at boot before the agent's hello (rc.sysinit); loaded here
  # only if that failed.
  [ -d /sys/module/ccm ] || for m in $(cat /etc/modules-smb.order 2>/dev/null); do insmod "/lib/modules/$m.ko" 2>/dev/null; done
  # echo_interval=5: a server that stopped answering (the host side of a reverted snapshot or a
  # migration) is noticed and reconnected within about 3 x 5 s (10 took ~35 s); soft: calls
  # fail instead of hanging forever while it is away.
  umask 077
  printf '//%s/%s %s cifs port=%s,username=%s,password=%s,vers=3.0,uid=%s,gid=%s,forceuid,forcegid,file_mode=0600,dir_mode=0700,actimeo=1,echo_interval=5,soft 0 0\n' \
    "$VDI_SMB_HOST" "$VDI_SMB_SHARE" "$home" "${VDI_SMB_PORT:-445}" "$VDI_SMB_USERNAME" "$VDI_SMB_PASSWORD" "$UID_USER" "$UID_USER" > "$STATE/home.fstab"
  umask 022
  # The network may have come up a moment ago: a few quick tries (a pause only after a failure).
  i=0
  while [ $i -lt 5 ]; do
    mount -T "$STATE/home.fstab" "$home" 2> "$STATE/mount.err" && { mounted=1; break; }
    i=$((i + 1))
    sleep 0.3
  done
  rm -f "$STATE/home.fstab"
  # Usable: the folder lists (a directory read over SMB, by the shell's own glob).
  if [ $mounted = 1 ] && set -- "$home"/* && [ -d "$home/." ]; then
    :
  else
    mounted=0
    err=""; read -r err < "$STATE/mount.err"
    umount -l "$home" 2>/dev/null
    fail "cannot mount the user's folder: $err"
  fi
else
  chown "$UID_USER:$UID_USER" "$home"
  chmod 0700 "$home"
fi
now_ms; t1=$ms
# Only now is the user on (the console session and ping read this): their home is ready.
echo "$u" > "$STATE/user"
echo "home=$home"
echo "mounted=$mounted"
echo "ms=$((t1 - t0))"
exit 0
