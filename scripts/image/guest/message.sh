#!/bin/sh
# Shows a helpdesk message on the guest's console (tty1). VDI_TITLE, VDI_TEXT (JSON-escaped).
t="$(printf '%s' "${VDI_TITLE:-Message}" | sed 's/\\n/ /g; s/\\"/"/g; s/\\\\/\\/g' | cut -c1-70)"
x="$(printf '%s' "${VDI_TEXT:-}" | sed 's/\\n/\n/g; s/\\"/"/g; s/\\\\/\\/g')"
{
  printf '\n\a*** %s ***\n' "$t"
  printf '%s\n' "$x" | fold -w 76
  printf '***\n'
} > /dev/tty1
printf '%s: %s\n' "$t" "$x" >> /run/vdi/messages.log
exit 0
