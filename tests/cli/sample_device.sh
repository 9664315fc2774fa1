#!/usr/bin/env bash
# `ditc sample` on the emulated device runs the whole loop there (RtBackend.sample: the plan's
# forward, the Philox noise kernel and the sampler-step kernel): seeded samples must match the
# reference backend's host loop within 1e-4, and the emu host loop (DITC_SAMPLE_ON_HOST=1)
# exactly, in the same output formats.
set -euo pipefail
: "${DITC:?}"
REF=${DITC_SHARED:?}/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export DITC_CACHE_DIR="$TMP/cache"
cd "${DITC_SRC:?}"
settings() {
  jq -r 'to_entries[] | select(.key | IN("input_size","in_channels","patch_size","hidden_size","depth",
           "num_heads","mlp_ratio","num_classes","learn_sigma")) | "--set \(.key)=\(.value)"' "$REF/$1.json"
}
check() {  # CASE SAMPLER CFG_SCALE
  local c=$1 s=$2 g=$3 out=$TMP/$1.$2.$3
  local args
  # shellcheck disable=SC2207
  args=($(settings "$c") --weights "$REF/$c.weights.safetensors" --sampler "$s" --steps 6 --cfg-scale "$g"
        --labels 1,2,7 --seed 3)
  "$DITC" sample models/dit.dit "${args[@]}" --backend ref --output "$out.ref.safetensors"
  "$DITC" sample models/dit.dit "${args[@]}" --backend emu --output "$out.emu.safetensors" 2>"$out.log"
  if grep -q "sampling on the host" "$out.log"; then echo "FAIL $c $s: emu fell back to the host loop"; cat "$out.log"; exit 1; fi
  DITC_SAMPLE_ON_HOST=1 "$DITC" sample models/dit.dit "${args[@]}" --backend emu --output "$out.host.safetensors"
  "$DITC" compare "$out.emu.safetensors:samples" "$out.ref.safetensors:samples" --tol 1e-4
  "$DITC" compare "$out.emu.safetensors:samples" "$out.host.safetensors:samples" --tol 1e-7
  "$DITC" compare "$out.emu.safetensors:labels" "$out.ref.safetensors:labels" --tol 0
}
check dit-tiny-p2 ddpm 4.0      # learned sigma, guidance
check dit-tiny-p2 ddim 1.0      # the plain forward entry
check dit-tiny-p4-eps ddpm 1.0  # fixed-large variance
check dit-tiny-p4-eps ddim 2.5
# the same file from the device loop and the host loop
# shellcheck disable=SC2046
for h in 0 1; do
  DITC_SAMPLE_ON_HOST=$h "$DITC" sample models/dit.dit $(settings dit-tiny-p2) --weights "$REF/dit-tiny-p2.weights.safetensors" \
    --sampler ddpm --steps 4 --cfg-scale 1.5 --labels 0-3 --seed 3 --backend emu --output "$TMP/grid$h.safetensors"
done
cmp "$TMP/grid0.safetensors" "$TMP/grid1.safetensors"
echo ok
