#!/usr/bin/env bash
# FreeBSD's own hastd test (sbin/hastd/tests/hastd_test.sh, reference/hast-spec.md §13):
# no resources, listen on a Unix socket path; `hastd -c` daemonises silently; `hastctl
# status` prints nothing to stderr and exits 0; `hastctl stop` exits 0 and hastd ends.
source "$(dirname "$0")/lib.sh"

cat > "$T/hast.conf" <<CONF
control $T/hastctl
pidfile $T/hastd.pid
listen $T/hastd.sock
CONF
"$HASTD" -c "$T/hast.conf" > "$T/out" 2> "$T/err" || die "hastd exited $?"
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || die "hastd printed: $(cat "$T/out" "$T/err")"
wait_for 5 "pidfile" test -s "$T/hastd.pid"
pid=$(cat "$T/hastd.pid")
PID[daemon]=$pid
wait_for 5 "control socket" test -S "$T/hastctl"
"$HASTCTL" status -c "$T/hast.conf" > "$T/out" 2> "$T/err" || die "hastctl status exited $?"
[ ! -s "$T/err" ] || die "hastctl status stderr: $(cat "$T/err")"
"$HASTCTL" stop -c "$T/hast.conf" > "$T/out" 2> "$T/err" || die "hastctl stop exited $?"
[ ! -s "$T/err" ] || die "hastctl stop stderr: $(cat "$T/err")"
gone() { ! kill -0 "$pid" 2>/dev/null; }
wait_for 10 "hastd to exit after stop" gone
unset "PID[daemon]"
[ ! -e "$T/hastd.pid" ] || die "pidfile left behind"
log "ok"
