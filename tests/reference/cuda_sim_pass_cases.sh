#!/usr/bin/env bash
# The shared cases of the approximating passes and the VAE decoder through --backend cuda under the
# simulated driver (DITC_CUDA_SIM=1): prune-heads2 and kv-heads2 (forward and cfg, fp32 1e-5, bf16 1e-2),
# w8 (1e-4) and w8a8 (1e-3), vae-tiny (fp32 1e-4, bf16 1e-2).  Skipped without NVRTC.
source "$(dirname "$0")/common.bash"
export DITC_CUDA_SIM=1
BACKEND_ARGS=(--backend cuda)
if ! check_forward dit-tiny-p2-pass-prune-heads2 2>"$TMP/first.err"; then
  if grep -q "NVRTC not found" "$TMP/first.err"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
  cat "$TMP/first.err" >&2
  exit 1
fi
for c in dit-tiny-p2-pass-prune-heads2 dit-tiny-p2-pass-kv-heads2; do
  BACKEND_ARGS=(--backend cuda)
  check_forward "$c"
  check_cfg "$c"
  BACKEND_ARGS=(--backend cuda --precision bf16)
  TOL_FORWARD=1e-2 check_forward "$c"
  TOL_FORWARD=1e-2 check_cfg "$c"
done
BACKEND_ARGS=(--backend cuda)
check_pass dit-tiny-p2-pass-w8 1e-4 --quantize w8
check_pass dit-tiny-p2-pass-w8a8 1e-3 --quantize w8a8
check_vae vae-tiny
BACKEND_ARGS=(--backend cuda --precision bf16)
TOL_VAE=1e-2 check_vae vae-tiny
