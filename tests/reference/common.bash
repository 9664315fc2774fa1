# Shared by the reference tests: run ditc on a case of ../shared/reference and compare with
# what the original PyTorch code computed.  Tolerances (relative L2, from the README there):
# forward and forward_with_cfg 1e-5, the 10-step DDIM/DDPM samplers 1e-4.
set -euo pipefail
: "${DITC:?DITC must name the ditc binary}"
REF=${DITC_SHARED:?DITC_SHARED must name the shared folder}/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Tests never touch the user's kernel cache.
export DITC_CACHE_DIR="$TMP/cache"
# Extra flags for every run and sample (the emu_*.sh tests pass --backend emu ...), and the tolerances.
# (the plain reference tests pin the reference executor: the default would be cuda on a GPU machine)
[ -n "${BACKEND_ARGS+set}" ] || BACKEND_ARGS=(--backend ref)
TOL_FORWARD=${TOL_FORWARD:-1e-5}
TOL_SAMPLER=${TOL_SAMPLER:-1e-4}

# settings CASE: --set flags for every model parameter the case's json names.
settings() {
  jq -r 'to_entries[] | select(.key | IN("input_size","in_channels","patch_size","hidden_size","depth",
           "num_heads","mlp_ratio","num_classes","learn_sigma","att","mediator_dim","moe_experts",
           "moe_top_k","moe_frequency")) | "--set \(.key)=\(.value)"' "$REF/$1.json"
}

# weights CASE: the case's weights file (a pass case's json names its base case's).
weights() { echo "$REF/$(jq -r '.weights // empty' "$REF/$1.json" | grep . || echo "$1.weights.safetensors")"; }

# pass_flags CASE: the flag a pass case's variant stands for ("prune-heads:2" -> --prune-heads 2).
pass_flags() {
  jq -r 'if has("variant") then .variant | split(":") | "--\(.[0]) \(.[1])" else empty end' "$REF/$1.json"
}

check_forward() {  # CASE
  local c=$1
  # shellcheck disable=SC2046
  "$DITC" run models/dit.dit $(settings "$c") $(pass_flags "$c") --weights "$(weights "$c")" \
    --input "$REF/$c.case.safetensors" --output "$TMP/$c.out.safetensors" ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"}
  "$DITC" compare "$TMP/$c.out.safetensors:out" "$REF/$c.case.safetensors:out" --tol "$TOL_FORWARD"
}

check_cfg() {  # CASE
  local c=$1 scale
  scale=$(jq -r .cfg_scale "$REF/$c.json")
  # shellcheck disable=SC2046
  "$DITC" run models/dit.dit $(settings "$c") $(pass_flags "$c") --weights "$(weights "$c")" \
    --input "$REF/$c.case.safetensors" --prefix cfg_ --cfg-scale "$scale" --output "$TMP/$c.cfg.safetensors" \
    ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"}
  "$DITC" compare "$TMP/$c.cfg.safetensors:out" "$REF/$c.case.safetensors:cfg_out" --tol "$TOL_FORWARD"
}

check_sampler() {  # CASE ddim|ddpm
  local c=$1 s=$2 scale steps noise=()
  scale=$(jq -r .cfg_scale "$REF/$c.json")
  steps=$(jq -r .sampling_steps "$REF/$c.json")
  [ "$s" = ddpm ] && noise=(--step-noise "$REF/$c.case.safetensors:ddpm_noise")
  # shellcheck disable=SC2046
  "$DITC" sample models/dit.dit $(settings "$c") --weights "$REF/$c.weights.safetensors" \
    --sampler "$s" --steps "$steps" --cfg-scale "$scale" --labels-from "$REF/$c.case.safetensors:${s}_y" \
    --init-noise "$REF/$c.case.safetensors:${s}_xT" ${noise[@]+"${noise[@]}"} --output "$TMP/$c.$s.safetensors" \
    ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"}
  "$DITC" compare "$TMP/$c.$s.safetensors:samples" "$REF/$c.case.safetensors:${s}_x0" --tol "$TOL_SAMPLER"
}

# check_emu CASE: every check the case has data for (forward; cfg and the samplers when its json
# names a cfg_scale) on the emulated device (the generated kernels on the CPU) at fp32 with the
# tolerances above, then forward (and cfg) at f16 and bf16, whose `out` must be within
# EMU_F16_TOL and EMU_BF16_TOL (default 1e-2, the issue's bound).
check_emu() {  # CASE
  local c=$1 p tol has_cfg=0
  BACKEND_ARGS=(--backend emu)
  check_forward "$c"
  if jq -e 'has("cfg_scale")' "$REF/$c.json" >/dev/null; then
    has_cfg=1
    check_cfg "$c"
    check_sampler "$c" ddim
    check_sampler "$c" ddpm
  fi
  for p in f16 bf16; do
    tol=${EMU_F16_TOL:-1e-2}
    [ "$p" = bf16 ] && tol=${EMU_BF16_TOL:-1e-2}
    BACKEND_ARGS=(--backend emu --precision "$p")
    TOL_FORWARD=$tol check_forward "$c"
    [ "$has_cfg" = 0 ] || TOL_FORWARD=$tol check_cfg "$c"
  done
  BACKEND_ARGS=(--backend ref)
}

# check_cuda CASE: every check the case has data for through --backend cuda: the real CUDA backend -
# CUBINs compiled by NVRTC and loaded, launches, the forward pass captured into a CUDA graph and
# replayed, GEMMs through cuBLASLt descriptors, the sampler loop on the device.  fp32 at the
# tolerances above, then forward (and cfg) at f16 and bf16 within CUDA_F16_TOL and CUDA_BF16_TOL
# (default 1e-2): on sm_80 and later their attention is the tensor-core kernel (mma.sync, ldmatrix,
# cp.async).  On a GPU (benchmarks/gpu_check.sh) or under the simulated driver (check_cuda_sim).
# Skipped (77) without NVRTC, which makes the CUBINs.
check_cuda() {  # CASE
  local c=$1 s has_cfg=0
  BACKEND_ARGS=(--backend cuda)
  if ! check_forward "$c" 2>"$TMP/first.err"; then
    if grep -q "NVRTC not found" "$TMP/first.err"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
    cat "$TMP/first.err" >&2
    exit 1
  fi
  if jq -e 'has("cfg_scale")' "$REF/$c.json" >/dev/null; then
    has_cfg=1
    check_cfg "$c"
    for s in ddim ddpm; do
      check_sampler "$c" "$s" 2>"$TMP/sample.err" || { cat "$TMP/sample.err" >&2; exit 1; }
      # the loop must have run on the device, not fallen back to sampling over forward passes
      if grep -q "sampling on the host" "$TMP/sample.err"; then cat "$TMP/sample.err" >&2; exit 1; fi
    done
  fi
  local p tol
  for p in f16 bf16; do
    tol=${CUDA_F16_TOL:-1e-2}
    [ "$p" = bf16 ] && tol=${CUDA_BF16_TOL:-1e-2}
    BACKEND_ARGS=(--backend cuda --precision "$p")
    TOL_FORWARD=$tol check_forward "$c"
    [ "$has_cfg" = 0 ] || TOL_FORWARD=$tol check_cfg "$c"
  done
  BACKEND_ARGS=(--backend ref)
}

# check_cuda_sim CASE: check_cuda under the simulated driver (DITC_CUDA_SIM=1, runtime/cuda_sim.c),
# with the kernels run from their source on the emulated device and cuBLASLt's descriptors
# interpreted as documented.  DITC_CUDA_SIM_ARCH picks the simulated GPU (default sm_90).
check_cuda_sim() {  # CASE
  export DITC_CUDA_SIM=1
  check_cuda "$1"
  unset DITC_CUDA_SIM
}

# check_pass CASE TOL FLAG...: a dit-tiny-p2-pass-* case (the base case's weights, named by its json)
# through ditc with FLAG... (e.g. --quantize w8): forward and forward_with_cfg within TOL, on the
# backend of BACKEND_ARGS.
check_pass() {  # CASE TOL FLAG...
  local c=$1 tol=$2 w scale
  shift 2
  w=$(jq -r .weights "$REF/$c.json")
  scale=$(jq -r .cfg_scale "$REF/$c.json")
  # shellcheck disable=SC2046
  "$DITC" run models/dit.dit $(settings "$c") --weights "$REF/$w" --input "$REF/$c.case.safetensors" \
    --output "$TMP/$c.out.safetensors" "$@" ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"}
  "$DITC" compare "$TMP/$c.out.safetensors:out" "$REF/$c.case.safetensors:out" --tol "$tol"
  # shellcheck disable=SC2046
  "$DITC" run models/dit.dit $(settings "$c") --weights "$REF/$w" --input "$REF/$c.case.safetensors" \
    --prefix cfg_ --cfg-scale "$scale" --output "$TMP/$c.cfg.safetensors" "$@" ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"}
  "$DITC" compare "$TMP/$c.cfg.safetensors:out" "$REF/$c.case.safetensors:cfg_out" --tol "$tol"
}

# check_pass_emu CASE TOL FLAG...: check_pass on the emulated device at fp32 within TOL, then at f16
# and bf16 (the GEMM operands in that precision) within 1e-2.
check_pass_emu() {  # CASE TOL FLAG...
  local c=$1 tol=$2 p
  shift 2
  BACKEND_ARGS=(--backend emu)
  check_pass "$c" "$tol" "$@"
  for p in f16 bf16; do
    BACKEND_ARGS=(--backend emu --precision "$p")
    check_pass "$c" 1e-2 "$@"
  done
  BACKEND_ARGS=(--backend ref)
}

# check_vae CASE: the VAE decoder (models/vae.dit, entry decode) on the case's z against the reference
# AutoencoderKL's out, at TOL_VAE (default 1e-4, the README's), with the json's configuration given as
# --set flags (block_out_channels as a list, 32,64); then the same weights with the older attention names
# (query, key, value, proj_attn in place of to_q, to_k, to_v, to_out.0), renamed in a temporary copy.
# The renaming needs python3 (the standard library only): without it the test is skipped (77).
check_vae() {  # CASE
  local c=$1 sets
  command -v python3 >/dev/null || { echo "SKIPPED: python3 (to rename the attention tensors) is not installed"; exit 77; }
  sets=$(jq -r 'to_entries[] | select(.key | IN("block_out_channels","layers_per_block","norm_num_groups",
           "latent_channels","out_channels","scaling_factor")) | "--set \(.key)=\(.value | if type == "array"
           then map(tostring) | join(",") else tostring end)"' "$REF/$c.json")
  sets="$sets --set latent_size=$(jq -r .latent_size "$REF/$c.json")"
  python3 - "$REF/$c.weights.safetensors" "$TMP/$c.old-names.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
new = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}
out, renamed = {}, 0
for k, v in header.items():
    for a, b in new.items():
        if ".attentions." in k and ("." + a) in k:
            k = k.replace("." + a, "." + b)
            renamed += 1
    out[k] = v
assert renamed >= 8, renamed
h = json.dumps(out).encode()
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data)
PY
  local w
  for w in "$REF/$c.weights.safetensors" "$TMP/$c.old-names.safetensors"; do
    # shellcheck disable=SC2086
    "$DITC" run models/vae.dit --entry decode $sets --weights "$w" --input "$REF/$c.case.safetensors" \
      --output "$TMP/$c.vae.safetensors" ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"} 2>"$TMP/vae.err" ||
      { cat "$TMP/vae.err" >&2; exit 1; }
    # the encoder's tensors are ignored, and said so once
    [ "$(grep -c 'encoder tensors (encoder.\*, quant_conv.\*) ignored' "$TMP/vae.err")" = 1 ] ||
      { cat "$TMP/vae.err" >&2; echo "expected one note on the ignored encoder tensors" >&2; exit 1; }
    "$DITC" compare "$TMP/$c.vae.safetensors:out" "$REF/$c.case.safetensors:out" --tol "${TOL_VAE:-1e-4}"
  done
}

cd "${DITC_SRC:?DITC_SRC must name the source tree}"
