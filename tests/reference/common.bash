# Shared by the reference tests: run ditc on a case of ../shared/reference and compare with
# what the original PyTorch code computed.  Tolerances (relative L2, from the README there):
# forward and forward_with_cfg 1e-5, the 10-step DDIM/DDPM samplers 1e-4.
set -euo pipefail
: "${DITC:?DITC must name the ditc binary}"
REF=${DITC_SHARED:?DITC_SHARED must name the shared folder}/reference
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# settings CASE: --set flags for every model parameter the case's json names.
settings() {
  jq -r 'to_entries[] | select(.key | IN("input_size","in_channels","patch_size","hidden_size","depth",
           "num_heads","mlp_ratio","num_classes","learn_sigma","att","mediator_dim","moe_experts",
           "moe_top_k","moe_frequency")) | "--set \(.key)=\(.value)"' "$REF/$1.json"
}

check_forward() {  # CASE
  local c=$1
  # shellcheck disable=SC2046
  "$DITC" run models/dit.dit $(settings "$c") --weights "$REF/$c.weights.safetensors" \
    --input "$REF/$c.case.safetensors" --output "$TMP/$c.out.safetensors"
  "$DITC" compare "$TMP/$c.out.safetensors:out" "$REF/$c.case.safetensors:out" --tol 1e-5
}

check_cfg() {  # CASE
  local c=$1 scale
  scale=$(jq -r .cfg_scale "$REF/$c.json")
  # shellcheck disable=SC2046
  "$DITC" run models/dit.dit $(settings "$c") --weights "$REF/$c.weights.safetensors" \
    --input "$REF/$c.case.safetensors" --prefix cfg_ --cfg-scale "$scale" --output "$TMP/$c.cfg.safetensors"
  "$DITC" compare "$TMP/$c.cfg.safetensors:out" "$REF/$c.case.safetensors:cfg_out" --tol 1e-5
}

check_sampler() {  # CASE ddim|ddpm
  local c=$1 s=$2 scale steps noise=()
  scale=$(jq -r .cfg_scale "$REF/$c.json")
  steps=$(jq -r .sampling_steps "$REF/$c.json")
  [ "$s" = ddpm ] && noise=(--step-noise "$REF/$c.case.safetensors:ddpm_noise")
  # shellcheck disable=SC2046
  "$DITC" sample models/dit.dit $(settings "$c") --weights "$REF/$c.weights.safetensors" \
    --sampler "$s" --steps "$steps" --cfg-scale "$scale" --labels-from "$REF/$c.case.safetensors:${s}_y" \
    --init-noise "$REF/$c.case.safetensors:${s}_xT" "${noise[@]}" --output "$TMP/$c.$s.safetensors"
  "$DITC" compare "$TMP/$c.$s.safetensors:samples" "$REF/$c.case.safetensors:${s}_x0" --tol 1e-4
}

cd "${DITC_SRC:?DITC_SRC must name the source tree}"
