# common.bash - what the command-line tests that source it share: strict mode, the environment
# ctest gives (DITC, DITC_SRC), a temporary folder $T removed at exit holding the kernel cache,
# the failure flag, expect, and the skip without NVRTC.
set -uo pipefail
: "${DITC:?DITC must name the ditc binary}" "${DITC_SRC:?DITC_SRC must name the source tree}"
cd "$DITC_SRC"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export DITC_CACHE_DIR="$T/cache"
fail=0

# nvrtc_or_skip LOG COMMAND...: run a first compile; exit 77 when NVRTC is missing, 1 when it fails
nvrtc_or_skip() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 && return 0
  if grep -q "NVRTC not found" "$log"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
  cat "$log"
  exit 1
}

# expect STATUS PATTERN -- command...: exit status, PATTERN (grep -E) on stderr after `ditc: error: `,
# no $T/out.* left behind, and after a usage error (2) where the usage is; a failure sets fail=1
expect() {
  local want=$1 pat=$2; shift 3
  rm -f "$T"/out.*
  "$@" >"$T/stdout" 2>"$T/stderr"
  local got=$?
  if [ "$got" != "$want" ] || ! grep -qE -- "$pat" "$T/stderr" || ls "$T"/out.* >/dev/null 2>&1 ||
     ! grep -q '^ditc: error: ' "$T/stderr" || { [ "$want" = 2 ] && ! grep -q '^run `ditc .*`' "$T/stderr"; }; then
    echo "FAIL (exit $got, want $want; pattern '$pat'): $*"; sed 's/^/    /' "$T/stderr" | head -20; fail=1
  else
    echo "ok   $(head -1 "$T/stderr")"
  fi
}
