#!/usr/bin/env bash
# A provider created by FreeBSD's hastctl (metadata bytes built by hand from the
# specification, the same block as tests/unit/metadata_test.cc): `hastctl dump` prints it
# as FreeBSD does, and hastd serves it as primary.
source "$(dirname "$0")/lib.sh"

write_config fullsync
truncate -s 10G "$T/a/disk.img"
python3 - "$T/a/disk.img" <<'PY'
import sys
pad7, pad6, pad5, pad1 = "00" * 7, "00" * 6, "00" * 5, "00"
hex_text = (
    "11 09 07000000 7265736f75726365 00" + pad7 + "736861726564 00 00"
    "08 09 08000000 6461746173697a65 00" + pad7 + "00ecff7f02000000"
    "06 0b 04000000 657874656e7473697a65 00" + pad5 + "00002000 00000000"
    "06 0a 04000000 6b656570646972747900" + pad6 + "40000000 00000000"
    "08 07 08000000 6f666673657400" + pad1 + "0014000000000000"
    "08 07 08000000 72657375696400" + pad1 + "0000000000000000"
    "08 09 08000000 6c6f63616c636e74 00" + pad7 + "0000000000000000"
    "08 0a 08000000 72656d6f7465636e7400" + pad6 + "0000000000000000"
    "11 09 05000000 70726576726f6c65 00" + pad7 + "696e697400 000000")
block = bytes.fromhex(hex_text.replace(" ", ""))
assert len(block) == 254, len(block)
with open(sys.argv[1], "r+b") as f:
    f.write(block + bytes(4096 - len(block)))
PY
ctl_cmd a dump shared > "$T/dump" || die "hastctl dump exited $?"
cat > "$T/expected" <<'OUT'
resource: shared
    datasize: 10737413120 (10GB)
    extentsize: 2097152 (2.0MB)
    keepdirty: 64
    localoff: 5120
    resuid: 0
    localcnt: 0
    remotecnt: 0
    prevrole: init
OUT
diff -u "$T/expected" "$T/dump" || die "dump output differs"

# hastd takes the FreeBSD-created provider as primary (the peer is down: degraded).
start_node a
ctl_cmd a role primary shared || die "role primary on a FreeBSD-created provider"
wait_for 10 "NBD socket" test -S "$(nbd_socket a)"
qemu-io -f raw "$(nbd_uri a)" -c "write -P 0x77 1G 1M" -c "read -P 0x77 1G 1M" > "$T/io" ||
  die "qemu-io: $(cat "$T/io")"
[ "$(nbdinfo --size "$(nbd_uri a)")" = 10737413120 ] || die "export size"
is_status a degraded || die "status $(status_of a)"
log "ok"
