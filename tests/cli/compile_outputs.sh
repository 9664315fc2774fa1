#!/usr/bin/env bash
# `ditc compile`'s two outputs, -o and --source, are one transaction of ir/fileio.h (see README.md
# here): the same file twice (the same name, or a symlink to it) is refused before any work and
# nothing is written; a --source that cannot be written (a directory) leaves no pack behind; both
# appear together when all went well.  Skipped (exit 77) when NVRTC is not installed.
source "$(dirname "$0")/common.bash"
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fail=1; }
C=(compile DiT-S/2 --set depth=1 --arch sm_90 --entry forward)
if ! "$DITC" "${C[@]}" -o "$T/probe.ditpack" >"$T/out" 2>&1; then
  if grep -q "NVRTC not found" "$T/out"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
  cat "$T/out"; bad "compile failed"; exit 1
fi

# expect_refused PATTERN FILES-THAT-MUST-NOT-EXIST -- compile arguments...
expect_refused() {
  local pat=$1 absent=$2; shift 3
  timeout 120 "$DITC" "${C[@]}" "$@" >"$T/out" 2>&1
  local rc=$? left
  left=$(for f in $absent; do [ -e "$f" ] && echo "$f"; done; compgen -G "$T/*.tmp.*"; compgen -G "$T/src/*.tmp.*")
  if [ "$rc" = 1 ] && grep -qE -- "$pat" "$T/out" && [ -z "$left" ]; then ok "$(grep -E -m1 -- "$pat" "$T/out")"
  else bad "exit $rc${left:+, left: $left}: compile $*"; cat "$T/out"; fi
}
expect_refused "same file" "$T/p.ditpack" -- -o "$T/p.ditpack" --source "$T/p.ditpack"
ln -s p.ditpack "$T/alias.cu"
expect_refused "same file" "$T/p.ditpack" -- -o "$T/p.ditpack" --source "$T/alias.cu"
mkdir "$T/src"
expect_refused "src: cannot write: is a directory" "$T/p.ditpack" -- -o "$T/p.ditpack" --source "$T/src"

timeout 120 "$DITC" "${C[@]}" -o "$T/p.ditpack" --source "$T/src/p.cu" >"$T/out" 2>&1 &&
  [ -s "$T/p.ditpack" ] && grep -q "==== plan forward" "$T/src/p.cu" && ok "-o and --source both written" ||
  { bad "-o and --source"; cat "$T/out"; }
exit $fail
