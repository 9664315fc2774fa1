#!/usr/bin/env bash
# Step caching through --backend cuda under the simulated driver (DITC_CUDA_SIM=1,
# runtime/cuda_sim.c): sample --cache-interval 2 keeps the loop on the device (the full and the
# cached plan on one stream, the deltas copied device to device) and matches the reference
# backend; and a pack compiled with --step-cache (its ENTRY.cache_full / ENTRY.cache_step plans)
# samples on emu exactly as the MODEL does, while a pack without them is refused.  Skipped (77)
# without NVRTC, which makes the CUBINs.
source "$(dirname "$0")/step_cache.bash"
ARGS=(--weights "$W" --sampler ddpm --steps 5 --cfg-scale 1.5 --labels 4,9 --seed 2 --cache-interval 2)
"$DITC" sample "$M" "${ARGS[@]}" --backend ref -o "$TMP/ref.safetensors"
if ! DITC_CUDA_SIM=1 "$DITC" sample "$M" "${ARGS[@]}" --backend cuda -o "$TMP/cuda.safetensors" 2>"$TMP/err"; then
  if grep -q "NVRTC not found" "$TMP/err"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
  cat "$TMP/err" >&2
  exit 1
fi
if grep -q "sampling on the host" "$TMP/err"; then echo "FAIL: cuda fell back to the host loop"; cat "$TMP/err"; exit 1; fi
"$DITC" compare "$TMP/cuda.safetensors:samples" "$TMP/ref.safetensors:samples" --tol 1e-4

# packs: the step-caching pair beside each entry
"$DITC" compile "$M" --arch sm_90 --batch 2 --entry all --step-cache --weights "$W" -o "$TMP/p.ditpack" >/dev/null
"$DITC" compile "$M" --arch sm_90 --batch 2 --entry all --weights "$W" -o "$TMP/plain.ditpack" >/dev/null
P=("${ARGS[@]:2}") # without --weights: a pack runs its own
"$DITC" sample "$M" "${ARGS[@]}" --backend emu -o "$TMP/model.emu.safetensors"
"$DITC" sample --plan "$TMP/p.ditpack" "${P[@]}" --backend emu -o "$TMP/pack.emu.safetensors"
cmp "$TMP/model.emu.safetensors" "$TMP/pack.emu.safetensors" || { echo "FAIL: the pack's cached entries differ"; exit 1; }
DITC_CUDA_SIM=1 "$DITC" sample --plan "$TMP/p.ditpack" "${P[@]}" --backend cuda -o "$TMP/pack.cuda.safetensors"
"$DITC" compare "$TMP/pack.cuda.safetensors:samples" "$TMP/ref.safetensors:samples" --tol 1e-4
if "$DITC" sample --plan "$TMP/plain.ditpack" "${P[@]}" --backend emu -o "$TMP/bad.safetensors" 2>"$TMP/err"; then
  echo "FAIL: a pack without the cached entries sampled with --cache-interval"; exit 1
fi
grep -q "ditc: error: --cache-interval 2: .*has no plan for 'forward_with_cfg.cache_full' (compile it with --step-cache)" \
  "$TMP/err" || { cat "$TMP/err"; exit 1; }
[ ! -e "$TMP/bad.safetensors" ] || { echo "FAIL: wrote a file"; exit 1; }
echo OK
