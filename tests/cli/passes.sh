#!/usr/bin/env bash
# The exact optimisation passes, measured on the compiled plans (`ditc compile --report --json`):
#   - DiT-S/2: at most 8 launches in any block with the default pipeline (fuse: attention, GEMM
#     epilogues, residual -> layernorm -> modulate), against one kernel per node with --passes none;
#   - DiT-XL/2 at --batch 32: the planned peak activation memory (plan-memory) is at most half of
#     the unplanned plan's (--passes none) and of the same plan without buffer reuse;
#   - the activation bytes moved are the exact sum of every step's reads and writes, and fewer
#     with the passes than without.
# Skipped (exit 77, reported by ctest as skipped) when NVRTC is not installed.
set -euo pipefail
: "${DITC:?DITC must name the ditc binary}"
cd "${DITC_SRC:?DITC_SRC must name the source tree}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export DITC_CACHE_DIR="$TMP/cache"
die() { echo "FAIL: $*" >&2; exit 1; }

report() { # OUT.json MODEL ARGS...: the JSON report of one compile
  local out=$1
  shift
  if ! "$DITC" compile "$@" --arch sm_90 --entry forward -o "$TMP/p.ditpack" --report --json >"$out" 2>"$TMP/err"; then
    if grep -q "NVRTC not found" "$TMP/err"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
    cat "$TMP/err"; die "compile $*"
  fi
}
summary() { jq -c '{kernels_per_forward, kernels_per_block, activation_bytes_moved, peak_activation_bytes,
                    unplanned_activation_bytes}' "$1"; }

report "$TMP/s2.json" DiT-S/2
report "$TMP/s2-none.json" DiT-S/2 --passes none
echo "DiT-S/2 default: $(summary "$TMP/s2.json")"
echo "DiT-S/2 none:    $(summary "$TMP/s2-none.json")"
jq -e '.kernels_per_block <= 8' "$TMP/s2.json" >/dev/null || die "DiT-S/2: more than 8 launches in a block"
jq -e '(.plans[0].steps | map(.act_read + .act_written) | add) == .activation_bytes_moved' "$TMP/s2.json" \
  >/dev/null || die "activation_bytes_moved is not the sum of the steps"
[ "$(jq .kernels_per_block "$TMP/s2-none.json")" -gt 20 ] || die "--passes none should lower one kernel per node"
[ "$(jq .activation_bytes_moved "$TMP/s2.json")" -lt "$(jq .activation_bytes_moved "$TMP/s2-none.json")" ] \
  || die "the passes should move fewer bytes"
# the fused kernels' banners name the nodes they compute
"$DITC" compile DiT-S/2 --set depth=1 --arch sm_90 --entry forward -o "$TMP/d1.ditpack" --report >"$TMP/d1.txt"
grep -q "layernorm_fused" "$TMP/d1.txt" || die "no fused layernorm in the DiT-S/2 plan"
echo "ok   DiT-S/2: $(jq .kernels_per_block "$TMP/s2.json") launches per block (none: $(jq .kernels_per_block "$TMP/s2-none.json"))"

report "$TMP/xl.json" DiT-XL/2 --batch 32
report "$TMP/xl-none.json" DiT-XL/2 --batch 32 --passes none
echo "DiT-XL/2 bs32 default: $(summary "$TMP/xl.json")"
echo "DiT-XL/2 bs32 none:    $(summary "$TMP/xl-none.json")"
planned=$(jq .peak_activation_bytes "$TMP/xl.json")
[ $((2 * planned)) -le "$(jq .peak_activation_bytes "$TMP/xl-none.json")" ] || die "XL/2 bs32: planned peak above half of --passes none"
[ $((2 * planned)) -le "$(jq .unplanned_activation_bytes "$TMP/xl.json")" ] || die "XL/2 bs32: planning saves less than half"
echo "ok   DiT-XL/2 bs32: planned peak $planned bytes"

# --source: the generated CUDA C, each kernel under a banner naming the IR nodes it computes
"$DITC" compile DiT-S/2 --set depth=1 --arch sm_90 --entry forward_with_cfg -o "$TMP/cfg.ditpack" --source "$TMP/cfg.cu" \
  >/dev/null
grep -q '^/\* fused layernorm: .* layernorm, .* add' "$TMP/cfg.cu" || die "--source: no fused layernorm banner"
grep -q '^/\* fused attention: ' "$TMP/cfg.cu" || die "--source: no fused attention banner"
grep -q '^/\* fused: .* cos, .* sin, .* concat' "$TMP/cfg.cu" || die "--source: the timestep embedding is not one kernel"
rc=0
"$DITC" compile DiT-S/2 --set depth=1 --arch sm_90 -o "$TMP/x.ditpack" --source "$TMP/no/such/dir/x.cu" \
  >"$TMP/out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "x.cu: cannot create" "$TMP/out" || { cat "$TMP/out"; die "--source into a missing folder"; }
[ ! -e "$TMP/x.ditpack" ] || die "a failed compile left its pack behind"
echo "ok   --source"
