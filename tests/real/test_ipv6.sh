#!/usr/bin/env bash
# The pair over IPv6 on [::1] (two ports): roles, data through NBD, providers identical.
source "$(dirname "$0")/lib.sh"

if ! python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
  echo "SKIP: no IPv6 loopback on this machine" >&2
  exit 0
fi
start_pair "${MODE:-fullsync}" ipv6
grep -q "tcp://\[::1\]" "$T/hast.conf" || die "config is not IPv6"
head -c $((8 << 20)) /dev/urandom > "$T/random"
nbdcopy --flush "$T/random" "$(nbd_uri a)" || die "nbdcopy"
wait_synced
data_identical || die "providers differ"
ctl_cmd a status shared | grep -q "tcp://\[::1\]" || die "status does not show the IPv6 remote"
log "ok"
