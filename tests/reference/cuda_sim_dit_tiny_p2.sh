#!/usr/bin/env bash
# dit-tiny-p2 through --backend cuda under the simulated CUDA driver (DITC_CUDA_SIM=1): the real CUDA
# backend with its CUBINs run on the emulated device; every check of the case at fp32 (forward and,
# where the case has them, forward_with_cfg and the 10-step DDIM and DDPM loops on the device), then
# forward (and forward_with_cfg) at bf16 within 1e-2.  Skipped without NVRTC.
source "$(dirname "$0")/common.bash"
check_cuda_sim dit-tiny-p2
# A pack with CUBINs for two architectures: the backend picks the simulated device's own (sm_90,
# then sm_80 under DITC_CUDA_SIM_ARCH), whose source the pack names.
# shellcheck disable=SC2046
"$DITC" compile models/dit.dit $(settings dit-tiny-p2) --batch 2 --entry forward --arch sm_80,sm_90 \
  --weights "$REF/dit-tiny-p2.weights.safetensors" -o "$TMP/tiny.ditpack" >/dev/null
for arch in sm_90 sm_80; do
  DITC_CUDA_SIM=1 DITC_CUDA_SIM_ARCH=$arch "$DITC" run --plan "$TMP/tiny.ditpack" --backend cuda \
    --input "$REF/dit-tiny-p2.case.safetensors" --output "$TMP/pack.$arch.safetensors"
  "$DITC" compare "$TMP/pack.$arch.safetensors:out" "$REF/dit-tiny-p2.case.safetensors:out" --tol 1e-5
done
