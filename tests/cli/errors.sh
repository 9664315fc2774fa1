#!/usr/bin/env bash
# Hostile input gets a clear message, a non-zero exit and no output file: missing and lying
# checkpoints, truncated files, impossible --set values, bad flags.
set -uo pipefail
: "${DITC:?}" "${DITC_SHARED:?}" "${DITC_SRC:?}"
cd "$DITC_SRC"
REF=$DITC_SHARED/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
TINY=(--set input_size=16 --set in_channels=4 --set patch_size=2 --set hidden_size=64 --set depth=2 --set num_heads=4 --set num_classes=10)

# expect STATUS PATTERN -- command...: exit status, a message matching PATTERN on stderr, no $T/out.*
expect() {
  local want=$1 pat=$2; shift 3
  rm -f "$T"/out.*
  "$@" >"$T/stdout" 2>"$T/stderr"
  local got=$?
  if [ "$got" != "$want" ] || ! grep -qE -- "$pat" "$T/stderr" || ls "$T"/out.* >/dev/null 2>&1; then
    echo "FAIL (exit $got, want $want; pattern '$pat'): $*"; sed 's/^/    /' "$T/stderr" | head -20; fail=1
  else
    echo "ok   $(head -1 "$T/stderr")"
  fi
}

expect 2 "usage|unknown" -- "$DITC" frobnicate
expect 2 "unknown option '--bogus'" -- "$DITC" stats DiT-S/2 --bogus
expect 2 "--steps takes" -- "$DITC" sample DiT-digits --steps many
expect 2 "needs a value" -- "$DITC" run DiT-S/2 --weights
expect 1 "num_heads" -- "$DITC" stats DiT-S/2 --set num_heads=5
expect 1 "unknown|no parameter|not a parameter" -- "$DITC" stats DiT-S/2 --set num_hedas=6
expect 1 "abc" -- "$DITC" stats DiT-S/2 --set depth=abc
expect 1 "no-such|No such file|cannot" -- "$DITC" stats models/no-such.dit
expect 1 "No such file|cannot open|no-such" -- "$DITC" run models/dit.dit "${TINY[@]}" --weights "$T/no-such.safetensors" \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"

# A truncated checkpoint.
head -c 5000 "$REF/dit-tiny-p2.weights.safetensors" >"$T/trunc.safetensors"
expect 1 "trunc.safetensors" -- "$DITC" run models/dit.dit "${TINY[@]}" --weights "$T/trunc.safetensors" \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# A lying header: claims more data than the file has.
printf '\x40\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}   ' >"$T/lie.safetensors"
expect 1 "lie.safetensors" -- "$DITC" run models/dit.dit "${TINY[@]}" --weights "$T/lie.safetensors" \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# The right file for the wrong model: every mismatch reported.
expect 1 "blocks.0.attn.qkv.weight" -- "$DITC" run models/dit.dit "${TINY[@]}" --set hidden_size=96 --set num_heads=6 \
  --weights "$REF/dit-tiny-p2.weights.safetensors" --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# Inputs that do not fit the model.
expect 1 "input 'x'|x" -- "$DITC" run models/dit.dit "${TINY[@]}" --set input_size=32 --weights random \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# An output into a directory that does not exist.
expect 1 "no-dir" -- "$DITC" sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 2 \
  --cfg-scale 1.5 --labels 0,1 --output "$T/no-dir/out.png"
expect 1 "label 11|outside" -- "$DITC" sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 2 \
  --cfg-scale 1.5 --labels 0,11 --output "$T/out.png"
expect 1 "random:x|seed" -- "$DITC" check models/dit.dit "${TINY[@]}" --weights random:x
exit $fail
