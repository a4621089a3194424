#!/usr/bin/env bash
# Two hastd on loopback in fullsync: create, roles, random data through NBD from clients
# nobody on this team wrote (nbdcopy, qemu-io, nbdinfo, fio's nbd engine), `complete` on
# both, the data areas of both providers byte-identical, hooks fired.
source "$(dirname "$0")/lib.sh"

start_pair "${MODE:-fullsync}"
URI=$(nbd_uri a)

size=$(nbdinfo --size "$URI")
[ "$size" -gt 0 ] || die "nbdinfo size $size"
log "export size $size"

# 16 MiB of random data in, read back, compared.
head -c $((16 << 20)) /dev/urandom > "$T/random"
nbdcopy --flush "$T/random" "$URI" || die "nbdcopy in"
nbdcopy "$URI" "$T/back" || die "nbdcopy out"
cmp -n $((16 << 20)) "$T/random" "$T/back" || die "data read back differs"

# qemu-io: patterned writes with FUA, a flush, a discard and write-zeroes, then verified.
qemu-io -f raw "$URI" \
  -c "write -P 0x5a -f 20M 1M" -c "flush" -c "discard 21M 512k" -c "write -z 22M 256k" \
  -c "read -P 0x5a 20M 1M" -c "read -P 0 21M 512k" -c "read -P 0 22M 256k" > "$T/qemu-io.out" ||
  die "qemu-io"
grep -q "Pattern verification failed" "$T/qemu-io.out" && die "qemu-io pattern: $(cat "$T/qemu-io.out")"

# fio's nbd engine with verification.
fio --name=verify --ioengine=nbd --uri="$URI" --rw=randwrite --bs=4k --iodepth=16 \
  --offset=32M --size=8M --verify=crc32c --do_verify=1 --output="$T/fio.out" ||
  die "fio: $(cat "$T/fio.out")"

wait_synced
data_identical || die "the providers' data areas differ"

ctl_cmd a list shared > "$T/list" || die "hastctl list"
grep -q "role: primary" "$T/list" || die "list: $(cat "$T/list")"
ctl_cmd a status --json shared | python3 -m json.tool > /dev/null || die "status --json"
[ "$(hooks_seen connect)" -ge 1 ] || die "no connect hook"
[ "$(hooks_seen role)" -ge 2 ] || die "role hooks missing"

# A clean stop: hastctl stop, the daemon exits 0 and removes its pidfile.
ctl_cmd a stop || die "hastctl stop"
wait "${PID[a]}" || die "hastd a exited with $?"
unset "PID[a]"
[ ! -e "$T/a/hastd.pid" ] || die "pidfile left behind"
log "ok"
