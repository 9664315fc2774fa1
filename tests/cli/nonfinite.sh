#!/usr/bin/env bash
# NaN or Inf in a forward pass or a sampling loop is an error naming what first made one: the
# output, the sampling step (and its t), and the node (ref) or the plan's step and kernel (emu) that
# first wrote a NaN or an infinity, found by running that forward pass once more with every value
# checked.  The trigger: the digits checkpoint with one row of blocks.1.attn.proj.weight at 1e38
# (finite weights, so no warning; the product overflows).  Nothing is written.  The CUDA backend's
# share (DITC_CUDA_SYNC=1, the simulated driver) and packs are cli/nonfinite_cuda.sh.
source "$DITC_SRC/tests/cli/common.bash"
W=models/digits/dit-digits.safetensors
source tests/cli/nonfinite.bash

# a NaN input: the input node itself (ref), the first kernel that reads it (emu)
nonfinite_input "$T/nanin.safetensors" '\x00\x00\xc0\x7f'
expect 1 "output 'out' \(ref backend\) holds 512 NaN or infinite values \(the first at flat index 0, item 0, nan\); the first to appear: node %0 \(input 'x' at .*dit.dit:[0-9]+\), value nan at flat index 0; nothing was written" -- \
  "$DITC" run DiT-digits --weights "$W" --input "$T/nanin.safetensors" --output "$T/out.safetensors" --backend ref
expect 1 "output 'out' \(emu backend\) holds 512 NaN or infinite values .*; the first to appear: step 1, kernel k1_conv2d \(%5 conv2d\), value nan at flat index 0 of its result; nothing was written" -- \
  "$DITC" run DiT-digits --weights "$W" --input "$T/nanin.safetensors" --output "$T/out.safetensors" --backend emu

# finite input, an overflowing weight: the linear that overflowed, on every path
nonfinite_input "$T/in.safetensors" '\x00\x00\x00\x00'
huge_checkpoint "$W" "$T/huge.safetensors"
expect 1 "output 'out' \(ref backend\) holds 512 NaN or infinite values .*; the first to appear: node %[0-9]+ \(linear 'blocks.1.attn.proj' at .*dit.dit:[0-9]+\), value -inf at flat index 0; nothing was written" -- \
  "$DITC" run DiT-digits --weights "$T/huge.safetensors" --input "$T/in.safetensors" --output "$T/out.safetensors" --backend ref
expect 1 "output 'out' \(emu backend\) holds 512 NaN or infinite values .*; the first to appear: step [0-9]+, a GEMM \(%[0-9]+ linear blocks.1.attn.proj\), value -inf at flat index 0 of its result; nothing was written" -- \
  "$DITC" run DiT-digits --weights "$T/huge.safetensors" --input "$T/in.safetensors" --output "$T/out.safetensors" --backend emu
S=(sample DiT-digits --weights "$T/huge.safetensors" --steps 3 --labels 0,1 --cfg-scale 1.5)
for s in ddpm ddim; do
  # the host loop over forward passes (ref), the loop on the emulated device, and the host loop over emu's run()
  expect 1 "model failed at sampling step 0 \(t=999\): the model's output \(ref backend\) holds 2048 NaN or infinite values .*; the first to appear: node %[0-9]+ \(linear 'blocks.1.attn.proj' at .*\), value -inf" -- \
    "$DITC" "${S[@]}" --sampler $s --output "$T/out.png" --backend ref
  expect 1 "model failed at sampling step 0 \(t=999\): the model's output \(emu backend\) holds 2048 NaN or infinite values .*; the first to appear: step [0-9]+, a GEMM \(%[0-9]+ linear blocks.1.attn.proj\), value -inf" -- \
    "$DITC" "${S[@]}" --sampler $s --output "$T/out.safetensors" --backend emu
  expect 1 "model failed at sampling step 0 \(t=999\): the model's output \(emu backend\) holds .*; the first to appear: step [0-9]+, a GEMM \(%[0-9]+ linear blocks.1.attn.proj\)" -- \
    env DITC_SAMPLE_ON_HOST=1 "$DITC" "${S[@]}" --sampler $s --output "$T/out.png" --backend emu
done
# a finite model output that the update overflows (guidance 3e38): the update of step 0, on every path
G=(sample DiT-digits --weights "$W" --steps 4 --labels 0 --sampler ddim --cfg-scale 3e38 --output "$T/out.png")
UPD="sampler update failed at sampling step 0 \(t=999\): x after the update holds [0-9]+ NaN or infinite values .*; the model's output was finite"
expect 1 "$UPD" -- "$DITC" "${G[@]}" --backend ref
expect 1 "$UPD" -- "$DITC" "${G[@]}" --backend emu
expect 1 "$UPD" -- env DITC_SAMPLE_ON_HOST=1 "$DITC" "${G[@]}" --backend emu
# the .npz path too (in a folder of its own: the finished batches stay in out.npz.partial/ for --resume)
mkdir -p "$T/npz"
expect 1 "model failed at sampling step 0 \(t=999\): the model's output \(ref backend\) holds .*linear 'blocks.1.attn.proj'" -- \
  "$DITC" sample DiT-digits --weights "$T/huge.safetensors" --steps 2 --sampler ddim --cfg-scale 1 --num-samples 3 --output "$T/npz/out.npz" --backend ref
[ ! -e "$T/npz/out.npz" ] || { echo "FAIL: a failed .npz run left out.npz"; fail=1; }
# and a clean checkpoint still samples
"$DITC" sample DiT-digits --weights "$W" --steps 2 --labels 0 --sampler ddim --cfg-scale 1.5 --output "$T/ok.png" --backend emu 2>"$T/stderr" &&
  [ -s "$T/ok.png" ] && echo "ok   the digits checkpoint samples" || { echo "FAIL: the clean checkpoint"; cat "$T/stderr"; fail=1; }
exit $fail
