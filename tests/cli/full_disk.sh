#!/usr/bin/env bash
# A full disk while writing an output (a 256 KiB tmpfs, filled up): the PNG and safetensors writers
# say "No space left on device", exit 1, leave no *.tmp.* file and no new output, and a file that
# was to be replaced keeps its old content.  Mounting needs root (as under CI); elsewhere skipped
# (exit 77, which ctest reports as skipped).
set -uo pipefail
: "${DITC:?}" "${DITC_SRC:?}"
cd "$DITC_SRC"
[ "$(id -u)" = 0 ] || { echo "SKIPPED: mounting a small tmpfs needs root"; exit 77; }
T=$(mktemp -d)
M=$T/disk
mkdir "$M"
if ! mount -t tmpfs -o size=256k tmpfs "$M" 2>"$T/mount.err"; then
  echo "SKIPPED: cannot mount a tmpfs here: $(cat "$T/mount.err")"; rm -rf "$T"; exit 77
fi
trap 'umount "$M"; rm -rf "$T"' EXIT
fail=0
TINY=(--set input_size=16 --set in_channels=3 --set patch_size=2 --set hidden_size=64 --set depth=2 --set num_heads=4 --set num_classes=10)
SAMPLE=(sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 2 --cfg-scale 1.5 --labels 0,1)

echo old >"$M/kept.safetensors"
head -c 1M /dev/zero >"$M/filler" 2>/dev/null # until the disk is full
for out in new.png new.safetensors kept.safetensors NEW.PNG; do
  timeout 60 "$DITC" "${SAMPLE[@]}" --output "$M/$out" >"$T/stdout" 2>"$T/stderr"
  rc=$?
  left=$(ls -A "$M" | grep -v '^filler$\|^kept.safetensors$')
  if [ "$rc" != 1 ] || ! grep -q "$out: cannot write: No space left on device" "$T/stderr" || [ -n "$left" ]; then
    echo "FAIL (exit $rc${left:+; left behind: $left}): --output $M/$out"; sed 's/^/    /' "$T/stderr"; fail=1
  else
    echo "ok   $(head -1 "$T/stderr")"
  fi
done
if [ "$(cat "$M/kept.safetensors")" = old ]; then echo "ok   the file to be replaced is as it was"
else echo "FAIL: kept.safetensors was changed"; fail=1; fi
exit $fail
