#!/usr/bin/env bash
# kill -9 the secondary during writes: the primary turns degraded and writes go on; the
# secondary restarts: resync, complete, providers identical, and the hooks fired
# disconnect, connect, syncstart, syncdone.
source "$(dirname "$0")/lib.sh"

start_pair "${MODE:-memsync}"
URI=$(nbd_uri a)
head -c $((8 << 20)) /dev/urandom > "$T/one"
nbdcopy "$T/one" "$URI" || die "first writes"

kill_node b
head -c $((8 << 20)) /dev/urandom > "$T/two"
nbdcopy --flush "$T/two" "$URI" || die "writes while the secondary is down"
wait_status a degraded
qemu-io -f raw "$URI" -c "write -P 0x33 30M 2M" > /dev/null || die "qemu-io while degraded"
[ "$(hooks_seen disconnect)" -ge 1 ] || die "no disconnect hook"

start_node b
ctl_cmd b role secondary shared || die "role secondary after restart"
wait_synced 60
data_identical || die "providers differ after resync"
[ "$(hooks_seen syncstart)" -ge 1 ] || die "no syncstart hook"
[ "$(hooks_seen syncdone)" -ge 1 ] || die "no syncdone hook"
[ "$(hooks_seen connect)" -ge 2 ] || die "no second connect hook"
nbdcopy "$URI" "$T/back" || die "read back"
cmp -n $((8 << 20)) "$T/two" "$T/back" || die "data of the degraded period lost"
log "ok"
