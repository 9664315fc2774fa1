#!/usr/bin/env bash
# cli/nonfinite.sh's overflowing checkpoint through a pack (run and sample --plan on emu: the plan
# rebuilt from the pack's record names its steps) and through the CUDA backend under the simulated
# driver (DITC_CUDA_SIM=1): with DITC_CUDA_SYNC=1 the model's output is checked after every forward
# pass and the step and kernel that first wrote a NaN or an infinity are named; without it the run's
# outputs and the samples are still checked, and the message says how to find the step.  Skipped
# (77) without NVRTC, which compiles the pack and the simulated GPU's kernels.
source "$DITC_SRC/tests/cli/common.bash"
W=models/digits/dit-digits.safetensors
source tests/cli/nonfinite.bash
nonfinite_input "$T/in.safetensors" '\x00\x00\x00\x00'
huge_checkpoint "$W" "$T/huge.safetensors"
nvrtc_or_skip "$T/probe" "$DITC" compile DiT-digits --weights "$T/huge.safetensors" --arch sm_90 -o "$T/huge.ditpack"

GEMM="the first to appear: step [0-9]+, a GEMM \(%[0-9]+ linear blocks.1.attn.proj\), value -inf"
expect 1 "output 'out' \(emu backend\) holds 512 NaN or infinite values .*; $GEMM at flat index 0 of its result; nothing was written" -- \
  "$DITC" run --plan "$T/huge.ditpack" --input "$T/in.safetensors" --output "$T/out.safetensors" --backend emu
expect 1 "model failed at sampling step 0 \(t=999\): the model's output \(emu backend\) holds .*; $GEMM" -- \
  "$DITC" sample --plan "$T/huge.ditpack" --steps 3 --labels 0 --sampler ddim --cfg-scale 1.5 --output "$T/out.png" --backend emu

export DITC_CUDA_SIM=1
S=(sample DiT-digits --weights "$T/huge.safetensors" --steps 3 --labels 0 --sampler ddpm --cfg-scale 1.5 --output "$T/out.png" --backend cuda)
R=(run DiT-digits --weights "$T/huge.safetensors" --input "$T/in.safetensors" --output "$T/out.safetensors" --backend cuda)
expect 1 "output 'out' \(cuda backend\) holds 512 NaN or infinite values .*; $GEMM at flat index 0 of its result; nothing was written" -- \
  env DITC_CUDA_SYNC=1 "$DITC" "${R[@]}"
expect 1 "model failed at sampling step 0 \(t=999\): the model's output \(cuda backend\) holds 1024 NaN or infinite values .*; $GEMM" -- \
  env DITC_CUDA_SYNC=1 "$DITC" "${S[@]}"
grep -q "sampling on the host" "$T/stderr" && { echo "FAIL: the cuda sampling loop ran on the host"; fail=1; }
expect 1 "sampler update failed at sampling step 0 \(t=999\): x after the update holds [0-9]+ NaN or infinite values .*; the model's output was finite" -- \
  env DITC_CUDA_SYNC=1 "$DITC" sample DiT-digits --weights "$W" --steps 4 --labels 0 --sampler ddim --cfg-scale 3e38 --output "$T/out.png" --backend cuda
expect 1 "output 'out' \(cuda backend\) holds 512 NaN or infinite values .* \(where the first appeared is not known: DITC_CUDA_SYNC=1 checks every step and names the first\); nothing was written" -- \
  env DITC_CUDA_SYNC=0 "$DITC" "${R[@]}"
expect 1 "the sampled x_0 holds 256 NaN or infinite values .*: DITC_CUDA_SYNC=1 checks the model's output at every step" -- \
  env DITC_CUDA_SYNC=0 "$DITC" "${S[@]}"
exit $fail
