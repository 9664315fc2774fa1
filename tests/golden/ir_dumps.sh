#!/usr/bin/env bash
# Golden IR dumps: for each tests/golden/ir/NAME.cmd (the arguments of one `ditc ir` run), the
# dump must equal tests/golden/ir/NAME.ir byte for byte.  DITC_UPDATE_GOLDEN=1 rewrites them.
set -uo pipefail
: "${DITC:?}" "${DITC_SRC:?}"
cd "$DITC_SRC"
fail=0
for cmd in tests/golden/ir/*.cmd; do
  want=${cmd%.cmd}.ir
  # shellcheck disable=SC2046
  got=$("$DITC" ir $(grep -v '^#' "$cmd") 2>&1)
  if [ "${DITC_UPDATE_GOLDEN:-0}" = 1 ]; then
    printf '%s\n' "$got" >"$want"
    echo "updated $want"
  elif ! diff -u "$want" <(printf '%s\n' "$got") >/tmp/ir_golden_diff.$$; then
    echo "FAIL $cmd"; head -40 /tmp/ir_golden_diff.$$; fail=1
  else
    echo "ok   $cmd"
  fi
done
rm -f /tmp/ir_golden_diff.$$
exit $fail
