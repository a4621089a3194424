#!/usr/bin/env bash
# frontend ublk on a kernel without the ublk driver (no /dev/ublk-control: the development
# and CI machines): `hastctl role primary` fails; hastd stays up and logs one clear error
# naming the resource, the device node and the fix; the resource stays in init, its
# provider is untouched and no link is made. The resource then still works with another
# frontend after a reload-free restart. Where the driver exists this test skips (exit 77)
# with a message: scripts/ublk-vm-test exercises the device there.
source "$(dirname "$0")/lib.sh"

if [ -e /dev/ublk-control ]; then
  echo "SKIP: /dev/ublk-control exists: this test is for kernels without the ublk driver"
  exit 77
fi

write_config memsync
LINK=$T/dev/hast/shared
sed -i "s|frontend nbd|frontend ublk $LINK|" "$T/hast.conf"
grep -q "frontend ublk $LINK" "$T/hast.conf" || die "config not rewritten"
create_disks
start_node a
before=$(sha256sum < "$T/a/disk.img")

set +e
ctl_cmd a role primary shared > "$T/role.out" 2>&1; code=$?
set -e
[ "$code" -ne 0 ] || die "role primary succeeded without a ublk driver"
log "hastctl role primary: exit $code: $(cat "$T/role.out")"
kill -0 "${PID[a]}" || die "hastd died"
ctl_cmd a status shared > /dev/null || die "hastd does not answer after the failed role change"
[ "$(role_of a)" = init ] || die "role is $(role_of a), expected init"

# One error line that says what, where and how to fix it.
line=$(grep -F "/dev/ublk-control" "$T/a/hastd.log" | head -n 1)
[ -n "$line" ] || die "no error naming /dev/ublk-control in the log"
log "hastd: $line"
for word in "[shared]" "primary" "modprobe ublk_drv" "Linux 6.0"; do
  grep -qF -- "$word" <<< "$line" || die "the error does not name '$word': $line"
done

[ "$(sha256sum < "$T/a/disk.img")" = "$before" ] || die "the provider changed"
[ ! -e "$LINK" ] && [ ! -L "$LINK" ] || die "a link was made: $(ls -l "$LINK")"
[ ! -e "$T/a/shared.ublk" ] || die "a ublk state file was written"

# A second attempt fails the same way (nothing half-made is left behind).
set +e
ctl_cmd a role primary shared > /dev/null 2>&1; again=$?
set -e
[ "$again" -eq "$code" ] || die "second attempt: exit $again, first $code"
kill -0 "${PID[a]}" || die "hastd died on the second attempt"
echo "PASS: frontend ublk without the driver"
