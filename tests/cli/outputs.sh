#!/usr/bin/env bash
# The commands' outputs, staged through ir/fileio.h by main (see README.md here):
#   - sample: a name ending in .png in any case (.PNG, .Png) is a PNG grid, any other a safetensors file;
#   - run and sample refuse a bad output (a directory) before any work;
#   - SIGTERM, SIGINT or SIGHUP while sample computes into a staged output: ditc dies of that signal
#     and leaves no *.tmp.* file;
#   - the same during an emulated-device compile (DITC_EMU_CC is a "compiler" that hangs): no
#     ditc-emu-* folder is left in $TMPDIR (a private one) and the compiler is gone.
set -uo pipefail
: "${DITC:?}" "${DITC_SRC:?}"
cd "$DITC_SRC"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
TINY=(--set input_size=16 --set in_channels=3 --set patch_size=2 --set hidden_size=64 --set depth=2 --set num_heads=4 --set num_classes=10)
SAMPLE=(sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 2 --cfg-scale 1.5 --labels 0,1)
ok() { echo "ok   $*"; }
bad() { echo "FAIL: $*"; fail=1; }
is_png() { [ "$(head -c 4 "$1" | tail -c 3)" = PNG ]; }

for name in a.png b.PNG c.Png; do
  timeout 60 "$DITC" "${SAMPLE[@]}" --output "$T/$name" 2>"$T/err" && is_png "$T/$name" && ok "$name is a PNG" ||
    { bad "$name is not a PNG"; cat "$T/err"; }
done
for name in d.safetensors e.SafeTensors samples; do
  timeout 60 "$DITC" "${SAMPLE[@]}" --output "$T/$name" && "$DITC" compare "$T/$name:samples" "$T/$name:samples" >/dev/null &&
    ok "$name is a safetensors file" || bad "$name is not a safetensors file"
done
# a name that says another format is refused before any work
timeout 60 "$DITC" "${SAMPLE[@]}" --output "$T/f.jpg" 2>"$T/err"
[ $? = 2 ] && grep -q "sample writes a PNG grid" "$T/err" && [ ! -e "$T/f.jpg" ] && ok "f.jpg is refused" || bad "f.jpg was not refused"

mkdir "$T/dir.png"
start=$(date +%s)
if timeout 60 "$DITC" sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 1000 --cfg-scale 1.5 \
    --labels 0-9 --output "$T/dir.png" 2>"$T/err"; then bad "a directory as output was accepted"
elif grep -q "is a directory" "$T/err" && [ $(($(date +%s) - start)) -lt 5 ]; then ok "refused at once: $(cat "$T/err")"
else bad "a directory as output: $(cat "$T/err")"; fi

# wait_for GLOB SECONDS: until a file matching GLOB exists
wait_for() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do compgen -G "$1" >/dev/null && return 0; sleep 0.1; done
  return 1
}

# Background jobs get their own process group and SIGINT is not ignored in them (set -m).
set -m
for sig in TERM INT HUP; do
  num=$(kill -l "$sig")
  timeout 120 "$DITC" sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 1000 \
    --cfg-scale 1.5 --labels 0-9 --repeat 4 --output "$T/sig.png" 2>"$T/err" &
  pid=$!
  # timeout runs ditc as its child: signal ditc itself
  wait_for "$T/sig.png.tmp.*" 30 || bad "SIG$sig: no staged output appeared"
  kill -s "$sig" "$(pgrep -P "$pid" -x ditc || echo "$pid")"
  wait "$pid"
  rc=$?
  left=$(compgen -G "$T/sig.png*")
  if [ "$rc" = $((128 + num)) ] && [ -z "$left" ]; then ok "SIG$sig while sampling: exit $rc, nothing left"
  else bad "SIG$sig while sampling: exit $rc${left:+, left: $left}"; cat "$T/err"; fi
done

mkdir "$T/tmp"
cat >"$T/hangcc" <<'CC'
#!/bin/sh
echo $$ >"$TMPDIR/cc.pid"
exec sleep 60
CC
chmod +x "$T/hangcc"
for sig in TERM INT; do
  num=$(kill -l "$sig")
  rm -f "$T/tmp/cc.pid"
  TMPDIR=$T/tmp DITC_EMU_CC=$T/hangcc timeout 120 "$DITC" sample models/dit.dit "${TINY[@]}" --weights random \
    --backend emu --sampler ddim --steps 2 --cfg-scale 1.5 --labels 0,1 --output "$T/emu.png" 2>"$T/err" &
  pid=$!
  wait_for "$T/tmp/cc.pid" 30 || { bad "SIG$sig: the emulated device's compiler did not start"; cat "$T/err"; }
  cc=$(cat "$T/tmp/cc.pid" 2>/dev/null)
  kill -s "$sig" "$(pgrep -P "$pid" -x ditc || echo "$pid")"
  wait "$pid"
  rc=$?
  sleep 0.2
  left=$(compgen -G "$T/tmp/ditc-emu-*"; compgen -G "$T/emu.png*")
  if [ "$rc" = $((128 + num)) ] && [ -z "$left" ] && ! kill -0 "$cc" 2>/dev/null; then
    ok "SIG$sig during an emu compile: exit $rc, no ditc-emu-* folder, the compiler stopped"
  else bad "SIG$sig during an emu compile: exit $rc${left:+, left: $left}"; cat "$T/err"; fi
done
exit $fail
