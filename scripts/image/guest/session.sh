#!/bin/sh
# The console session on tty1 (respawned by init): the demo banner and a root shell while nobody
# is logged on; once the agent logged a user on (/run/vdi/user), a shell as that user in their
# home with their name in the banner and the prompt. The agent's USR1 restarts it at once
# (logon, logoff); the user's shell ending by itself (exit, logout) is reported as session_end.
# Each shell runs in a session of its own that takes tty1 as its controlling terminal
# (setsid -c): it is the terminal's foreground job (prompt, ^C) however often it restarts, and
# this script, outside it, can still be told to restart it (USR1).
PATH=/bin:/sbin
STATE=/run/vdi
mkdir -p "$STATE"
echo $$ > "$STATE/session.pid"
child=""
restart=0
hl=""
trap 'restart=1; [ -n "$child" ] && kill -KILL $child 2>/dev/null' USR1
event() { timeout 2 sh -c "printf '%s\n' '$1' > $STATE/events.fifo" 2>/dev/null & }
NAME="$(cat /run/vdi-name 2>/dev/null)"
# What the banner shows that never changes, read once: the banner is redrawn at every logon
# before the user's shell starts, and every process costs tens of ms under TCG.
KERNEL="$(uname -r)"
DATA="$(df -h /data 2>/dev/null | awk 'NR==2{print $2}')"
while :; do
  restart=0
  # A logoff by the broker in progress (host-logoff names the user; logoff.sh writes it before
  # it ends their processes): the console comes back once their user file is gone (at most 5 s,
  # or at once when the agent's USR1 says it is done).
  u=""; read -r u 2>/dev/null < "$STATE/user"
  n=0
  while [ $restart = 0 ] && [ -n "$hl" ] && [ "$u" = "$hl" ] && [ $n -lt 50 ]; do
    sleep 0.1; n=$((n + 1)); u=""; read -r u 2>/dev/null < "$STATE/user"
  done
  hl=""
  # tty1 is opened afresh for every shell: the previous shell's session ending hung up the
  # descriptors opened before it (this script's own stdout among them).
  exec > /dev/tty1 2>&1
  printf '\033[H\033[J'
  echo "+----------------------------------------------------------+"
  echo "|  vdi-broker demo desktop                                 |"
  echo "+----------------------------------------------------------+"
  echo
  echo "  Desktop : $NAME"
  echo "  Kernel  : $KERNEL"
  echo "  Data    : /data ($DATA)"
  if [ -n "$u" ]; then
    home="/home/$u"
    disp=""
    while IFS=: read -r n x id gid gecos rest; do [ "$n" = "$u" ] && disp="$gecos"; done < /etc/passwd
    where="(local)"
    while read -r dev dir fs rest; do [ "$dir" = "$home" ] && [ "$fs" = cifs ] && where="(your folder, mounted)"; done < /proc/mounts
    echo "  User    : ${disp:-$u} ($u)"
    echo "  Home    : $home $where"
    echo
    echo "  Welcome, ${disp:-$u}."
    echo
    HOME="$home" USER="$u" LOGNAME="$u" PS1="$u@$NAME:\\w\$ " ENV=/etc/vdi/user-profile \
      setsid -c su "$u" -s /bin/sh -p -c "cd '$home' && exec /bin/sh -i" < /dev/tty1 > /dev/tty1 2>&1 &
    child=$!
    event "{\"v\":1,\"type\":\"event\",\"event\":\"logon_complete\",\"user\":\"$u\"}"
  else
    echo "  Home    : nobody logged on"
    echo
    PS1="$NAME# " setsid -c /bin/sh -i < /dev/tty1 > /dev/tty1 2>&1 &
    child=$!
  fi
  wait $child
  # Until it is reaped: a trap (USR1) interrupts wait at once, and the old shell's session
  # hangs tty1 up when it exits; a banner written before that would be lost.
  while kill -0 $child 2>/dev/null; do wait $child; done
  child=""
  # A user shell that ended without the agent asking (exit, a hang-up): the user logged off
  # inside the guest. Asked by the broker (logoff, or a logon replacing them): host-logoff
  # names them, or their user file is gone or names the next user.
  hl=""; read -r hl 2>/dev/null < "$STATE/host-logoff"
  if [ $restart = 0 ] && [ -n "$u" ] && [ "$hl" != "$u" ]; then
    now=""; read -r now 2>/dev/null < "$STATE/user"
    [ "$now" = "$u" ] && event "{\"v\":1,\"type\":\"event\",\"event\":\"session_end\",\"user\":\"$u\"}"
  fi
  # host-logoff has been read: a later logon of the same user must not find it (their exit
  # would not be reported).
  [ -n "$hl" ] && [ "$hl" = "$u" ] && rm -f "$STATE/host-logoff"
done
