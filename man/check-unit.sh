#!/usr/bin/env bash
# check-unit.sh UNIT SBINDIR MANDIR: `systemd-analyze verify` accepts the unit without a
# message, with its /usr/sbin/ programs taken from SBINDIR (the build) and its
# Documentation= pages looked up in MANDIR (man5/, man8/). Exits 77 (ctest's
# SKIP_RETURN_CODE) when systemd-analyze is missing.
set -u
unit=$1 sbindir=$2 mandir=$3
if ! command -v systemd-analyze > /dev/null; then
  echo "check-unit: systemd-analyze is not installed; skipping"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=$(basename "$unit")
sed "s|/usr/sbin/|$sbindir/|g" "$unit" > "$work/$name"
# Without man(1), systemd-analyze cannot look the pages up: leave that check out.
command -v man > /dev/null || sed -i '/^Documentation=/d' "$work/$name"
output=$(cd "$work" && MANPATH=$mandir systemd-analyze verify "$work/$name" 2>&1)
status=$?
if [ "$status" -ne 0 ] || [ -n "$output" ]; then
  echo "check-unit: systemd-analyze verify $name: exit status $status"
  echo "$output" | sed 's/^/  /'
  exit 1
fi
echo "check-unit: $name verified"
