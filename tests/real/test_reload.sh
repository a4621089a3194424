#!/usr/bin/env bash
# Configuration reload on SIGHUP (reference/hast-spec.md §1.5): on a running pair, a
# replication change is applied to the live primary without a restart (no role hook, still
# `complete`, data still replicated), a new resource appears in init and can be used, a
# syntax error logs "Configuration not reloaded." and changes nothing, a removed resource
# goes away, and a new control address replaces the old socket. A daemonised hastd
# without -P moves to a new pidfile path.
source "$(dirname "$0")/lib.sh"

start_pair fullsync
URI=$(nbd_uri a)
qemu-io -f raw "$URI" -c "write -P 1 0 1M" -c flush > /dev/null || die "write before reload"
wait_synced

last_lines_have() { tail -n 5 "$T/a/hastd.log" | grep -q "$1"; }
list_a() { ctl_cmd a list "$@"; }

# ---- replication fullsync → async on the primary, and a new resource ----
roles_before=$(hooks_seen_on a role)
connects_before=$(hooks_seen_on a connect)
cp "$T/hast.conf" "$T/hast.conf.orig"
sed -i 's/replication fullsync/replication async/' "$T/hast.conf"
add_resource extra "$T/a/extra.img" "$T/b/extra.img"
create_resource extra 16M
reload_node a "async, extra added"
grep -q "Reloading configuration..." "$T/a/hastd.log" || die "no 'Reloading configuration...'"
grep -q "Configuration reloaded successfully." "$T/a/hastd.log" || die "reload failed"
grep -q "Resource shared configuration was modified, reloading it." "$T/a/hastd.log" ||
  die "shared not reloaded live"
grep -q "Resource extra added to the configuration file." "$T/a/hastd.log" || die "extra not added"

list_a shared > "$T/list" || die "hastctl list shared"
grep -q "replication: async" "$T/list" || die "list after reload: $(cat "$T/list")"
grep -q "role: primary" "$T/list" || die "list after reload: $(cat "$T/list")"
list_a extra > "$T/list" || die "hastctl list extra"
grep -q "role: init" "$T/list" || die "extra: $(cat "$T/list")"
ctl_cmd a status > "$T/status" || die "hastctl status"
grep -q "^extra" "$T/status" || die "status all: $(cat "$T/status")"
is_status a complete || die "pair not complete after reload: $(status_of a)"
is_status b complete || die "secondary not complete after reload: $(status_of b)"
[ "$(hooks_seen_on a role)" -eq "$roles_before" ] || die "the live reload changed a role"
[ "$(hooks_seen_on a connect)" -eq "$connects_before" ] || die "the live reload reconnected"

# Still serving and replicating, now in async.
qemu-io -f raw "$URI" -c "write -P 2 1M 2M" -c "read -P 2 1M 2M" -c flush > "$T/qemu-io.out" ||
  die "qemu-io after reload"
grep -q "Pattern verification failed" "$T/qemu-io.out" && die "read back after reload differs"
wait_synced
data_identical || die "the providers' data areas differ after the reload"

# The new resource on both nodes (b reloads too: its `shared`, a secondary whose
# replication setting changed, restarts, and a reconnects), then used.
kill -HUP "${PID[b]}"
b_has_extra() { ctl_cmd b status extra | grep -q "^extra"; }
wait_for 20 "hastd b to add extra" b_has_extra
reconnected() { [ "$(hooks_seen_on a connect)" -gt "$connects_before" ]; }
wait_for 20 "a to reconnect shared after b restarted it" reconnected
wait_status a complete
ctl_cmd b role secondary extra || die "role secondary extra on b"
ctl_cmd a role primary extra || die "role primary extra on a"
extra_complete() { [ "$(status_of a extra)" = complete ]; }
wait_for 20 "extra to connect" extra_complete
is_status a complete || die "shared not complete with extra running"

# ---- a syntax error: nothing changes ----
cp "$T/hast.conf" "$T/hast.conf.good"
echo "resource broken {" >> "$T/hast.conf"
reload_node a "syntax error"
last_lines_have "Configuration not reloaded." || die "no 'Configuration not reloaded.'"
grep -q "hast.conf: line" "$T/a/hastd.log" || die "the error does not name the line"
cp "$T/hast.conf.good" "$T/hast.conf"
ctl_cmd a status shared > /dev/null || die "hastd a stopped answering after a bad reload"
list_a shared | grep -q "replication: async" || die "bad reload changed the mode"
is_status a complete || die "pair not complete after a bad reload"
qemu-io -f raw "$URI" -c "read -P 2 1M 2M" > "$T/qemu-io.out" || die "read after bad reload"
grep -q "Pattern verification failed" "$T/qemu-io.out" && die "data after bad reload differs"

# ---- busypoll (ours) is the resource thread's: applied without a restart or reconnect ----
roles_before=$(hooks_seen_on a role)
connects_before=$(hooks_seen_on a connect)
sed -i 's/replication async/replication async\n  busypoll 100/' "$T/hast.conf"
grep -q "busypoll 100" "$T/hast.conf" || die "test set-up: busypoll not added"
reload_node a "busypoll 100"
last_lines_have "Configuration reloaded successfully." || die "busypoll reload failed"
kill -HUP "${PID[b]}"
[ "$(hooks_seen_on a role)" -eq "$roles_before" ] || die "the busypoll reload changed a role"
[ "$(hooks_seen_on a connect)" -eq "$connects_before" ] || die "the busypoll reload reconnected"
qemu-io -f raw "$URI" -c "write -P 3 0 1M" -c "read -P 3 0 1M" > "$T/qemu-io.out" ||
  die "qemu-io with busypoll"
grep -q "Pattern verification failed" "$T/qemu-io.out" && die "data with busypoll differs"
is_status a complete || die "pair not complete with busypoll"

# ---- extra removed: it goes to init and away; shared untouched ----
sed -i '/^resource extra {/,$d' "$T/hast.conf"
reload_node a "extra removed"
last_lines_have "Configuration reloaded successfully." || die "removal reload failed"
grep -q "Resource extra removed from the configuration file." "$T/a/hastd.log" ||
  die "extra not removed"
set +e
ctl_cmd a status extra > "$T/status" 2>&1; code=$?
set -e
[ "$code" -ne 0 ] || die "extra still known: $(cat "$T/status")"
grep -q " role extra primary init" "$T/hooks.log" || die "no role hook for extra → init"
is_status a complete || die "shared not complete after extra was removed"

# ---- a new control address: the new socket answers, the old one is gone ----
sed -i "s|control uds://$T/a/control|control uds://$T/a/control2|" "$T/hast.conf"
reload_node a "control address"
grep -q "Control socket changed from uds://$T/a/control to uds://$T/a/control2." \
  "$T/a/hastd.log" || die "no control socket change logged"
[ -S "$T/a/control2" ] || die "no new control socket"
[ ! -e "$T/a/control" ] || die "old control socket left"
ctl_cmd a status shared > /dev/null || die "hastctl on the new control socket"

# ---- a control address that cannot be opened: not reloaded, the old socket serves ----
cp "$T/hast.conf" "$T/hast.conf.good"
sed -i "s|control uds://$T/a/control2|control uds://$T/missing/control|" "$T/hast.conf"
reload_node a "unusable control address"
last_lines_have "Configuration not reloaded." || die "unusable control address reloaded"
grep -q "Unable to listen on control address uds://$T/missing/control" "$T/a/hastd.log" ||
  die "no control address error logged"
cp "$T/hast.conf.good" "$T/hast.conf"
ctl_cmd a status shared > /dev/null || die "hastctl after a failed control switch"
# (The same address at start-up: exit 71, EX_OSERR, not an abort.)
sed -e "s|control uds://$T/a/control2|control uds://$T/missing/control|" \
  -e "s|$T/a/hastd.pid|$T/badcontrol.pid|" -e "s|$PORT|$((PORT + 7))|g" \
  "$T/hast.conf" > "$T/hast.conf.badcontrol"
set +e
"$HASTD" -F -c "$T/hast.conf.badcontrol" --node hasta > "$T/badcontrol.out" 2>&1; code=$?
set -e
[ "$code" -eq 71 ] || die "bad control address at start: exit $code: $(cat "$T/badcontrol.out")"

# ---- a daemonised hastd without -P moves its pidfile ----
mkdir -p "$T/solo"
solo_conf() {
  cat > "$T/solo/hast.conf" <<CONF
control $T/solo/control
pidfile $T/solo/$1
listen $T/solo/hastd.sock
CONF
}
solo_conf first.pid
"$HASTD" -c "$T/solo/hast.conf" > /dev/null 2>&1 || die "solo hastd exited $?"
wait_for 5 "solo pidfile" test -s "$T/solo/first.pid"
pid=$(cat "$T/solo/first.pid")
PID[solo]=$pid
wait_for 5 "solo control socket" test -S "$T/solo/control"
solo_conf second.pid
kill -HUP "$pid"
wait_for 10 "the new pidfile" test -s "$T/solo/second.pid"
[ "$(cat "$T/solo/second.pid")" = "$pid" ] || die "new pidfile holds $(cat "$T/solo/second.pid")"
wait_for 5 "the old pidfile to go" test ! -e "$T/solo/first.pid"
"$HASTCTL" stop -c "$T/solo/hast.conf" > /dev/null || die "solo hastctl stop"
gone() { ! kill -0 "$pid" 2>/dev/null; }
wait_for 10 "solo hastd to exit" gone
unset "PID[solo]"
[ ! -e "$T/solo/second.pid" ] || die "new pidfile left behind at exit"
log "ok"
