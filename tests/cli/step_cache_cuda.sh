#!/usr/bin/env bash
# Step caching through --backend cuda under the simulated driver (DITC_CUDA_SIM=1,
# runtime/cuda_sim.c): sample --cache-interval 2 keeps the loop on the device (the full and the
# cached plan on one stream, the deltas copied device to device) and matches the reference
# backend.  Skipped (77) without NVRTC, which makes the CUBINs.
set -euo pipefail
: "${DITC:?}"
cd "${DITC_SRC:?}"
W=models/digits/dit-digits.safetensors
[ -f "$W" ] || { echo "SKIPPED: $W is not there"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export DITC_CACHE_DIR="$TMP/cache"
M=models/dit.dit:DiT-digits
ARGS=(--weights "$W" --sampler ddpm --steps 5 --cfg-scale 1.5 --labels 4,9 --seed 2 --cache-interval 2)
"$DITC" sample "$M" "${ARGS[@]}" --backend ref -o "$TMP/ref.safetensors"
if ! DITC_CUDA_SIM=1 "$DITC" sample "$M" "${ARGS[@]}" --backend cuda -o "$TMP/cuda.safetensors" 2>"$TMP/err"; then
  if grep -q "NVRTC not found" "$TMP/err"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
  cat "$TMP/err" >&2
  exit 1
fi
if grep -q "sampling on the host" "$TMP/err"; then echo "FAIL: cuda fell back to the host loop"; cat "$TMP/err"; exit 1; fi
"$DITC" compare "$TMP/cuda.safetensors:samples" "$TMP/ref.safetensors:samples" --tol 1e-4
echo OK
