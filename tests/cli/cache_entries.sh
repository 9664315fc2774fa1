#!/usr/bin/env bash
# Kernel cache entries that went bad, and the pack compiled after: a corrupt ptxas report (its own
# entry next to the CUBIN's) is removed and rebuilt - the CUBIN is compiled again with it - so the pack
# is byte for byte the clean compile's; an empty directory in an entry's place is removed and
# rebuilt; one with files in it is left alone, and the warning says so instead of "removed"; every
# pack is the clean one.  Skipped (exit 77) without NVRTC.
source "$(dirname "$0")/common.bash"
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; sed 's/^/    /' "$T/err" | head; fail=1; }

cat >"$T/tiny.dit" <<'DIT'
model tiny(d: int = 8) {
  entry forward(x: f32[B, 4, d]) { return relu(linear(x, param weight[d, d], param bias[d])) * 2.0 }
}
DIT
compile() { "$DITC" compile "$T/tiny.dit" --entry forward --arch sm_90 -o "$1" >"$T/err" 2>&1; }
nvrtc_or_skip "$T/err" compile "$T/clean.ditpack"
# the entries: the CUBIN (an ELF) and ptxas' report (text), 88-byte header each
LOG= CUBIN=
for f in "$DITC_CACHE_DIR"/sm_90/*/*.cubin; do
  if [ "$(tail -c +89 "$f" | head -c 4 | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then CUBIN=$f; else LOG=$f; fi
done
[ -n "$LOG" ] && [ -n "$CUBIN" ] || { echo "FAIL: expected a CUBIN and a report entry"; ls -R "$DITC_CACHE_DIR"; exit 1; }

# again: all from the cache, the same pack
compile "$T/p.ditpack" && grep -q "nvrtc: 0 compiled, 1 from cache" "$T/err" && cmp -s "$T/clean.ditpack" "$T/p.ditpack" &&
  ok "a second compile is a cache hit with the same pack" || bad "second compile"

# a corrupt report: removed, both compiled again, the same pack; then a hit again
printf '\xff' | dd of="$LOG" bs=1 seek=95 conv=notrunc status=none
compile "$T/p.ditpack" && grep -q "corrupt entry $LOG (payload hash does not match); removed, will rebuild" "$T/err" &&
  grep -q "nvrtc: 1 compiled, 0 from cache" "$T/err" && cmp -s "$T/clean.ditpack" "$T/p.ditpack" &&
  ok "a corrupt ptxas report is rebuilt: the pack is the clean one" || bad "corrupt report"
compile "$T/p.ditpack" && grep -q "nvrtc: 0 compiled, 1 from cache" "$T/err" && ! grep -q warning "$T/err" &&
  cmp -s "$T/clean.ditpack" "$T/p.ditpack" && ok "and the rebuilt entries are hits" || bad "after the rebuild"

# an empty directory in an entry's place: removed, rebuilt
for e in "$LOG" "$CUBIN"; do
  rm "$e" && mkdir "$e"
  compile "$T/p.ditpack" && grep -q "corrupt entry $e (is a directory, not a regular file); removed, will rebuild" "$T/err" &&
    [ -f "$e" ] && cmp -s "$T/clean.ditpack" "$T/p.ditpack" &&
    ok "an empty directory as an entry is removed and rebuilt" || bad "empty directory at $e"
done
# one with a file in it: left alone, said so, compiled without the cache, the same pack
for e in "$LOG" "$CUBIN"; do
  rm "$e" && mkdir "$e" && touch "$e/keep"
  compile "$T/p.ditpack" && grep -q "corrupt entry $e (is a directory, not a regular file); it cannot be removed" "$T/err" &&
    ! grep -q "removed, will rebuild" "$T/err" && [ -f "$e/keep" ] && cmp -s "$T/clean.ditpack" "$T/p.ditpack" &&
    ok "a directory with files as an entry is left alone, and the warning says so" || bad "full directory at $e"
  rm -r "$e" && compile "$T/p.ditpack" # both entries back
done
exit $fail
