#!/usr/bin/env bash
# check-man.sh PAGE...: each manual page renders without a single groff warning
# (groff -mandoc -ww -z -Tutf8: every warning on, output discarded) and has no source
# line over 100 columns. Exits 77 (ctest's SKIP_RETURN_CODE) when groff is missing:
# Debian's groff-base provides it.
set -u
if ! command -v groff > /dev/null; then
  echo "check-man: groff is not installed (Debian package groff-base); skipping"
  exit 77
fi
failures=0
for page in "$@"; do
  warnings=$(groff -mandoc -ww -z -Tutf8 "$page" 2>&1)
  status=$?
  if [ "$status" -ne 0 ] || [ -n "$warnings" ]; then
    echo "$page: groff exit status $status, warnings:"
    echo "$warnings" | sed 's/^/  /'
    failures=$((failures + 1))
  fi
  long=$(LC_ALL=C.UTF-8 awk 'length($0) > 100 { print FILENAME ":" FNR ": " length($0) " columns" }' \
    "$page")
  if [ -n "$long" ]; then
    echo "$long"
    failures=$((failures + 1))
  fi
done
if [ "$failures" -gt 0 ]; then
  echo "check-man: $failures problem(s)"
  exit 1
fi
echo "check-man: $# page(s) render cleanly"
