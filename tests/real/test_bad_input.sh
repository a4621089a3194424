#!/usr/bin/env bash
# Bad input never crashes hastd or touches a provider: bad configuration files (exit 78
# naming the file and line), bad hastctl arguments (exit 64), and random bytes sent to the
# replication listener (from the configured peer's address and from another), the
# control socket and the NBD socket.
source "$(dirname "$0")/lib.sh"

# ---- configuration errors ----
mkdir -p "$T/bad"
printf 'resource r {\n  replication sometimes\n}\n' > "$T/bad/hast.conf"
set +e
"$HASTD" -F -c "$T/bad/hast.conf" > "$T/bad/out" 2>&1; code=$?
set -e
[ "$code" -eq 78 ] || die "bad config: exit $code, expected 78"
grep -q "$T/bad/hast.conf: line 2" "$T/bad/out" || die "message does not name file and line: $(cat "$T/bad/out")"
set +e
"$HASTD" -F -c "$T/bad/missing.conf" > /dev/null 2>&1; code=$?
"$HASTCTL" status -c "$T/bad/hast.conf" > /dev/null 2>&1; ctl_code=$?
set -e
[ "$code" -eq 78 ] || die "missing config: exit $code"
[ "$ctl_code" -eq 78 ] || die "hastctl with a bad config: exit $ctl_code"

# ---- bad hastctl arguments ----
for args in "" "frobnicate" "role" "role sideways shared" "create" "create -e 12x shared" \
  "status -Z"; do
  set +e
  # shellcheck disable=SC2086
  "$HASTCTL" $args > /dev/null 2>&1; code=$?
  set -e
  [ "$code" -eq 64 ] || die "hastctl $args: exit $code, expected 64"
done

# ---- random bytes at every socket of a running pair ----
start_pair fullsync
qemu-io -f raw "$(nbd_uri a)" -c "write -P 9 0 4M" -c flush > /dev/null || die "write"
wait_synced
sum_data() {
  local off size
  off=$(ctl_cmd a dump shared | awk '/localoff:/ { print $2 }')
  size=$(ctl_cmd a dump shared | awk '/datasize:/ { print $2 }')
  for n in a b; do tail -c +$((off + 1)) "$T/$n/disk.img" | head -c "$size" | sha256sum; done
}
before=$(sum_data)
garbage() {  # garbage KIND ADDRESS [SOURCE]: connect, send random bytes, close
  python3 - "$@" <<'PY'
import os, random, socket, sys
kind, address = sys.argv[1], sys.argv[2]
source = sys.argv[3] if len(sys.argv) > 3 else None
for round in range(20):
    try:
        if kind == "unix":
            s = socket.socket(socket.AF_UNIX)
            s.connect(address)
        else:
            host, port = address.rsplit(":", 1)
            s = socket.socket(socket.AF_INET)
            if source:
                s.bind((source, 0))
            s.connect((host, int(port)))
        s.settimeout(0.5)
        s.sendall(os.urandom(random.randint(1, 4096)))
        try:
            s.recv(65536)
        except OSError:
            pass
        s.close()
    except OSError:
        pass
PY
}
garbage tcp "127.0.0.2:$PORT" 127.0.0.1   # from the configured peer: reaches the protocol
garbage tcp "127.0.0.1:$PORT" 127.0.0.1   # from an unknown address: refused
garbage unix "$T/a/control"
garbage unix "$T/b/control"
garbage unix "$(nbd_socket a)"
for n in a b; do kill -0 "${PID[$n]}" || die "hastd $n died"; done
ctl_cmd a status shared > /dev/null || die "a does not answer"
ctl_cmd b status shared > /dev/null || die "b does not answer"
qemu-io -f raw "$(nbd_uri a)" -c "read -P 9 0 4M" | grep -q "verification failed" && die "data changed"
[ "$(sum_data)" = "$before" ] || die "a provider's data area changed"
log "ok"
