#!/usr/bin/env bash
# Hostile or careless input, round two (the command line's share): values that overflow what they
# become, outputs whose name says another format, flags that would be silently ignored, inputs of
# the wrong shape, models a command cannot drive, checkpoints whose tensors are not weights.  Each
# gets `ditc: error: ...` naming what is wrong, a non-zero exit and no output file.
: "${DITC_SHARED:?}"
REF=$DITC_SHARED/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
source "$DITC_SRC/tests/cli/common.bash"
W=models/digits/dit-digits.safetensors
SAMPLE=("$DITC" sample DiT-digits --weights "$W" --steps 2 --labels 0)

# a float option that would become inf
expect 2 "cfg-scale takes a finite number of magnitude at most" -- "${SAMPLE[@]}" --sampler ddim --cfg-scale 1e39 --output "$T/out.png"
expect 2 "cfg-scale takes a finite number" -- "${SAMPLE[@]}" --sampler ddim --cfg-scale -3e38x --output "$T/out.png"
# the output's name decides its format, in any case; a name that says none is refused
expect 2 "sample writes a PNG grid \(.png\) or the samples as safetensors" -- "${SAMPLE[@]}" --sampler ddim --cfg-scale 1 --output "$T/out.txt"
expect 2 "run writes its outputs as safetensors" -- "$DITC" run DiT-digits --weights "$W" --input "$T/in.safetensors" --output "$T/out.PNG"
"${SAMPLE[@]}" --sampler ddim --cfg-scale 1 --output "$T/grid.PNG" 2>"$T/stderr" || { cat "$T/stderr"; fail=1; }
if [ "$(head -c 8 "$T/grid.PNG" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then echo "ok   .PNG is a PNG"
else echo "FAIL: grid.PNG is not a PNG"; fail=1; fi
# a flag the sampler would ignore
expect 2 "step-noise replays DDPM's per-step noise; DDIM \(eta 0\) adds none" -- "${SAMPLE[@]}" --sampler ddim --cfg-scale 1 --step-noise "$REF/dit-tiny-p2.case.safetensors:ddpm_noise" --output "$T/out.png"
# replayed noise of the wrong shape says what it has
expect 1 "ddim_x0' is F32 \[2, 4, 16, 16\]; expected \[1 or more, C, H, W\] with C\*H\*W = 256" -- "${SAMPLE[@]}" --sampler ddim --cfg-scale 1 --init-noise "$REF/dit-tiny-p2.case.safetensors:ddim_x0" --output "$T/out.png"
# a model sample cannot drive
cat >"$T/flat.dit" <<'DIT'
model flat(num_classes: int = 10) {
  entry forward(x: f32[B, 8], t: f32[B], y: i32[B]) { return x }
}
DIT
expect 1 "sample needs a class-conditional image model: .* in_channels 0, input_size 0, num_classes 10" -- "$DITC" sample "$T/flat.dit" --weights random --sampler ddim --steps 2 --cfg-scale 1 --labels 0 --output "$T/out.png"
# a checkpoint whose tensors are integers is refused by name (the reader takes F32, F16, BF16)
printf '%s' '{"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}' >"$T/hdr"
{ printf "\\x$(printf %02x "$(wc -c <"$T/hdr")")\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; cat "$T/hdr"; printf '\x01\x00\x00\x00\x02\x00\x00\x00'; } >"$T/ints.safetensors"
cat >"$T/w.dit" <<'DIT'
model m() {
  entry forward(x: f32[B, 2]) { return x * param w[2] }
}
DIT
expect 1 "w: stored as I32; weights must be F32, F16 or BF16" -- "$DITC" check "$T/w.dit" --weights "$T/ints.safetensors"
# NaN weights bind, with a warning that names the tensor
printf '%s' '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' >"$T/hdr"
{ printf "\\x$(printf %02x "$(wc -c <"$T/hdr")")\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; cat "$T/hdr"; printf '\x00\x00\xc0\x7f\x00\x00\x80\x3f'; } >"$T/nan.safetensors"
if "$DITC" check "$T/w.dit" --weights "$T/nan.safetensors" 2>"$T/stderr" &&
   grep -q "^ditc: warning: .*nan.safetensors: 1 NaN or infinite values in 1 tensor (the first: w)" "$T/stderr"; then
  echo "ok   $(head -1 "$T/stderr")"
else echo "FAIL: NaN weights"; cat "$T/stderr"; fail=1; fi
# a name defined twice in a model file
cat >"$T/dup.dit" <<'DIT'
model m() {
  entry forward(x: f32[B, 2]) { return x }
  entry forward(x: f32[B, 2]) { return x + x }
}
DIT
expect 1 "dup.dit:3:9: error: entry 'forward' is defined twice" -- "$DITC" stats "$T/dup.dit"
# compare with NaN on one side: counted and located, the errors over the finite pairs (not "max abs error 0")
st2() { # FILE B0 B1: a safetensors file holding x = F32[2] from the two values' little-endian bytes
  local h='{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
  while [ $(( ${#h} % 8 )) != 0 ]; do h="$h "; done
  { printf "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$h"; printf "$2$3"; } >"$1"
}
st2 "$T/cmpnan.safetensors" '\x00\x00\x80\x3f' '\x00\x00\xc0\x7f'
st2 "$T/one.safetensors" '\x00\x00\x80\x3f' '\x00\x00\x00\x40'
expect 1 "non-finite values: 1 in .*cmpnan.safetensors:x, 0 in .*one.safetensors:x; the first at flat index 1 \(nan vs 2\)" -- \
  "$DITC" compare "$T/cmpnan.safetensors:x" "$T/one.safetensors:x" --tol 1
grep -q "over the finite pairs; non-finite: 1 in the first, 0 in the second" "$T/stdout" || { echo "FAIL: compare NaN summary: $(cat "$T/stdout")"; fail=1; }

# memory: what a command needs is estimated before it allocates, and refused with the number and the limit
expect 1 "DiT-digits at batch 100000 on ref needs about [0-9.]+ GiB of host memory, more than the 16.00 GiB DITC_MEMORY_LIMIT" -- \
  env DITC_MEMORY_LIMIT=16G "${SAMPLE[@]}" --sampler ddim --cfg-scale 1 --repeat 100000 --output "$T/out.png"
# the issue's --set hidden_size=65536: stopped while the model is built (its sincos table), before any weight
expect 1 "compile-time values need more than 64 MiB: stopping" -- \
  "$DITC" sample DiT-S/2 --set hidden_size=65536 --set num_heads=8 --weights random --steps 2 --labels 0 --sampler ddim \
  --cfg-scale 1 --output "$T/out.png"
for be in ref emu; do
  expect 1 "DiT-S/2 at batch 1 on $be needs about [0-9.]+ GiB of host memory" -- \
    "$DITC" bench DiT-S/2 --set hidden_size=65472 --set num_heads=6 --backend $be --iters 1
done
expect 1 "sampling 1 image at once needs about 0.00 GiB of host memory, more than the 0.00 GiB DITC_MEMORY_LIMIT" -- \
  env DITC_MEMORY_LIMIT=1K "${SAMPLE[@]}" --sampler ddim --cfg-scale 1 --output "$T/out.png"

# NaN in a result is an error naming the output and where it first appeared (cli/nonfinite.sh), and nothing is
# written (ref and emu)
h='{"x":{"dtype":"F32","shape":[1,1,16,16],"data_offsets":[0,1024]},"t":{"dtype":"F32","shape":[1],"data_offsets":[1024,1028]},"y":{"dtype":"I32","shape":[1],"data_offsets":[1028,1032]}}'
while [ $(( ${#h} % 8 )) != 0 ]; do h="$h "; done
{ printf "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$h"; printf '\x00\x00\xc0\x7f'
  head -c 1020 /dev/zero; printf '\x00\x00\x20\x41\x03\x00\x00\x00'; } >"$T/nanin.safetensors"
for be in ref emu; do
  expect 1 "output 'out' \($be backend\) holds 512 NaN or infinite values \(the first at flat index 0, item 0, nan\); the first to appear: .*; nothing was written" -- \
    "$DITC" run DiT-digits --weights "$W" --input "$T/nanin.safetensors" --output "$T/out.safetensors" --backend $be
done

exit $fail
