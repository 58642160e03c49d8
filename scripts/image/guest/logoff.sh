#!/bin/sh
# Logs the user off the demo guest: ends their processes, unmounts their folder (lazily if it
# is still busy), forgets the mount credential and their passwd entry (docs/shares.md).
# Called by the agent (agent.sh) for `logoff` and by logon.sh before a new logon.
#
#   VDI_USER  the user to log off; when it is not the user logged on now, nothing happens (a
#             late logoff never unmounts the next user's folder). Empty or `--all` as $1: whoever.
# Prints `user=<who was logged off>`; exit 0 (also when nobody was logged on).
PATH=/bin:/sbin
UID_USER=1000
STATE=/run/vdi
cur="$(cat "$STATE/user" 2>/dev/null)"
want="${VDI_USER:-}"
[ "${1:-}" = "--all" ] && want=""
if [ -n "$want" ] && [ "$want" != "$cur" ]; then
  echo "user="
  exit 0
fi

# The broker asked (logoff, or a logon replacing the user): the console session must not report
# the end of this user's shell as a logoff from inside the guest (session.sh reads this).
[ -n "$cur" ] && echo "$cur" > "$STATE/host-logoff"

# The user's processes end (they would keep the folder busy). Shell builtins only per process:
# under TCG every exec costs tens of ms. Nobody on and nothing mounted (a warm spare): no walk.
mounts="$(awk '$3 == "cifs" { print $2 }' /proc/mounts)"
if [ -n "$cur" ] || [ -n "$mounts" ]; then
  for d in /proc/[0-9]*; do
    pid="${d#/proc/}"
    case "$pid" in "$$"|"$PPID"|1) continue ;; esac
    uid=""
    while read -r k a rest; do
      [ "$k" = "Uid:" ] && { uid="$a"; break; }
    done 2>/dev/null < "$d/status"
    [ "$uid" = "$UID_USER" ] && kill -KILL "$pid" 2>/dev/null
  done
fi

# Every SMB mount goes: one user at a time on this desktop. Still busy (a root shell inside):
# detached lazily, so the next user never sees it.
for m in $mounts; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "vdi: cannot unmount $m" >&2
done
rm -f "$STATE/home.fstab" "$STATE/user"
if [ -n "$cur" ]; then
  grep -v "^[^:]*:x:$UID_USER:" /etc/passwd > /etc/passwd.vdi && cat /etc/passwd.vdi > /etc/passwd
  grep -v "^[^:]*:x:$UID_USER:" /etc/group > /etc/group.vdi 2>/dev/null && cat /etc/group.vdi > /etc/group
  rm -f /etc/passwd.vdi /etc/group.vdi
fi
echo "user=$cur"
exit 0
