#!/bin/sh
# The demo guest's agent (docs/agent.md), respawned by init. It finds our virtio-serial port by
# name, answers the broker's challenges with a proof made from the per-desktop secret QEMU hands
# in through fw_cfg, runs the broker's requests through the /etc/vdi hooks (logon.sh,
# logoff.sh, message.sh) and sends the guest's events (written by others into the events FIFO).
# One JSON object per line, "v":1. The port reads EOF while the broker is not connected: the
# agent re-opens it and asks for a challenge (hello_request) each time.
PATH=/bin:/sbin
PORT_NAME=org.vdibroker.agent.0
STATE=/run/vdi
FIFO=$STATE/events.fifo
AGENT=vdi-agent-sh/1
mkdir -p "$STATE" && chmod 0700 "$STATE"
# Our own log, not the console: the serial console is the guest's shell (tests and admins type
# there), and a line printed into it interleaves with whatever runs.
LOG=$STATE/agent.log
log() { echo "$(date +%FT%T) vdi-agent: $*" >> "$LOG"; }
grep -qs '^virtio_console ' /proc/modules || insmod /lib/modules/virtio_console.ko 2>/dev/null

port=""
i=0
while [ -z "$port" ] && [ $i -lt 100 ]; do
  for n in /sys/class/virtio-ports/*/name; do
    [ -r "$n" ] && [ "$(cat "$n")" = "$PORT_NAME" ] && port="/dev/$(basename "$(dirname "$n")")"
  done
  [ -n "$port" ] && [ -c "$port" ] && break
  port=""; i=$((i + 1)); sleep 0.1
done
if [ -z "$port" ]; then log "no $PORT_NAME port"; sleep 30; exit 1; fi

SECRET="$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/vdi/agent-secret/raw 2>/dev/null)"
ID=""
for w in $(cat /proc/cmdline); do case "$w" in vdi.id=*) ID="${w#vdi.id=}" ;; esac; done
BOOT="$(cat /proc/sys/kernel/random/boot_id)"
case "$ID" in *[!A-Za-z0-9_.-]*) ID="" ;; esac
# Both come with this boot (fw_cfg, kernel command line) and cannot appear later: without them
# the agent idles for the rest of the boot instead of being respawned every 30 s by init.
if [ -z "$SECRET" ] || [ -z "$ID" ]; then log "no agent secret or desktop id: idle until the next boot"; while :; do sleep 3600; done; fi

# The fields of the request in $line as shell variables j_<key> (one awk per line: forks are
# what costs time in a guest under emulation). String values keep their JSON escapes; only the
# home object has host/port/share/username/password.
parse() {
  eval "$(J="$line" awk '
    function q(s) { gsub(/\047/, "\047\\\047\047", s); return "\047" s "\047" }
    BEGIN {
      $0 = ENVIRON["J"]
      n = split("type id nonce user display host share username password title text", keys, " ")
      for (i = 1; i <= n; i++) {
        k = keys[i]; v = ""
        if (match($0, "\"" k "\":\"([^\"\\\\]|\\\\.)*\"")) v = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5)
        printf "j_%s=%s\n", k, q(v)
      }
      v = ""
      if (match($0, /"port":[0-9]+/)) v = substr($0, RSTART + 7, RLENGTH - 7)
      printf "j_port=%s\n", q(v)
    }')"
}
# A JSON string literal of $1 (control characters dropped).
jq() { printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
send() { printf '%s\n' "$1" >&3; }
idle_seconds() {
  a="$(stat -c %X /dev/tty1 2>/dev/null)"; n="$(date +%s)"
  [ -n "$a" ] && echo $((n - a)) || echo 0
}

logon() {
  out="$STATE/logon.out"; err="$STATE/logon.err"
  VDI_USER="$j_user" VDI_DISPLAY="$j_display" VDI_SMB_HOST="$j_host" VDI_SMB_PORT="$j_port" VDI_SMB_SHARE="$j_share" \
    VDI_SMB_USERNAME="$j_username" VDI_SMB_PASSWORD="$j_password" /etc/vdi/logon.sh > "$out" 2> "$err"
  if [ $? -ne 0 ]; then
    send "{\"v\":1,\"type\":\"result\",\"id\":\"$rid\",\"ok\":false,\"error\":$(jq "$(tail -n 3 "$err")")}"
    return
  fi
  home=""; mounted=0; ms=0
  while IFS='=' read -r k v; do
    case "$k" in home) home="$v" ;; mounted) mounted="$v" ;; ms) ms="$v" ;; esac
  done < "$out"
  case "$ms" in ''|*[!0-9]*) ms=0 ;; esac
  # The console session restarts as the user (session.sh reads $STATE/user).
  spid=""; read -r spid < "$STATE/session.pid" && kill -USR1 "$spid" 2>/dev/null
  [ "$mounted" = 1 ] && m=true || m=false
  # home is /home/<user>, whose characters logon.sh checked.
  send "{\"v\":1,\"type\":\"result\",\"id\":\"$rid\",\"ok\":true,\"home\":\"$home\",\"mounted\":$m,\"ms\":$ms}"
}

logoff() {
  # The session ending now is the broker's doing: session.sh reports no session_end for it and
  # waits for the logoff to finish before it shows the console again.
  echo "$j_user" > "$STATE/host-logoff"
  VDI_USER="$j_user" /etc/vdi/logoff.sh > /dev/null 2> "$STATE/logoff.err"
  rc=$?
  spid=""; read -r spid < "$STATE/session.pid" && kill -USR1 "$spid" 2>/dev/null
  rm -f "$STATE/host-logoff"
  if [ $rc -eq 0 ]; then send "{\"v\":1,\"type\":\"result\",\"id\":\"$rid\",\"ok\":true}"
  else send "{\"v\":1,\"type\":\"result\",\"id\":\"$rid\",\"ok\":false,\"error\":$(jq "$(tail -n 3 "$STATE/logoff.err")")}"; fi
  rm -f "$STATE/logoff.err"
}

message() {
  VDI_TITLE="$j_title" VDI_TEXT="$j_text" /etc/vdi/message.sh > /dev/null 2>&1
  [ $? -eq 0 ] && ok=true || ok=false
  send "{\"v\":1,\"type\":\"result\",\"id\":\"$rid\",\"ok\":$ok}"
}

ping_() {
  u="$(cat "$STATE/user" 2>/dev/null)"
  send "{\"v\":1,\"type\":\"result\",\"id\":\"$rid\",\"ok\":true,\"user\":$(jq "$u"),\"idleSeconds\":$(idle_seconds),\"boot\":\"$BOOT\"}"
}

[ -p "$FIFO" ] || { rm -f "$FIFO"; mkfifo -m 0600 "$FIFO"; }
# The port is opened once (it allows one opener). While the broker is not connected, reads
# return EOF at once and writes wait until it connects.
# A previous agent's helpers (init respawned us) would keep the port open: they go first.
for p in $(cat "$STATE/agent.pids" 2>/dev/null); do kill "$p" 2>/dev/null; done
pkill -f "^cat $FIFO" 2>/dev/null
exec 3<>"$port" || { sleep 1; exit 1; }
# Events from the session (logon_complete, session_end), shutdown (poweroff) and the idle ticker.
( while :; do cat "$FIFO"; done ) >&3 &
echo $! > "$STATE/agent.pids"
( while :; do
    sleep 30
    [ -s "$STATE/user" ] && timeout 2 sh -c "printf '%s\n' '{\"v\":1,\"type\":\"event\",\"event\":\"idle\",\"idleSeconds\":$(idle_seconds)}' > $FIFO"
  done ) &
echo $! >> "$STATE/agent.pids"

while :; do
  # (Re)started or the broker reconnected: ask for a challenge instead of waiting a second.
  send '{"v":1,"type":"hello_request"}'
  while IFS= read -r line <&3; do
    parse
    rid="$j_id"
    case "$rid" in *[!0-9a-zA-Z_-]*) continue ;; esac
    case "$j_type" in
      challenge)
        nonce="$j_nonce"
        case "$nonce" in ''|*[!0-9a-f]*) continue ;; esac
        proof="$(printf '%s' "$nonce:$ID:$SECRET" | sha256sum)"
        send "{\"v\":1,\"type\":\"hello\",\"desktop\":\"$ID\",\"nonce\":\"$nonce\",\"proof\":\"${proof%% *}\",\"agent\":\"$AGENT\",\"boot\":\"$BOOT\"}"
        ;;
      logon) logon ;;
      logoff) logoff ;;
      message) message ;;
      ping) ping_ ;;
      *) [ -n "$rid" ] && send "{\"v\":1,\"type\":\"result\",\"id\":\"$rid\",\"ok\":false,\"error\":\"unknown request\"}" ;;
    esac
  done
  sleep 0.5
done
