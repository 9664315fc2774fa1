#!/usr/bin/env bash
# `ditc compile`, `ditc cache` and packs on the emulated backend, all without a GPU:
#   - DiT-S/2 compiles for sm_80, sm_86, sm_89 and sm_90 (NVRTC runs ptxas; no device needed) into
#     two plans, one per distinct tuning row (sm_80 = sm_90, sm_86 = sm_89); a second compile is all
#     cache hits; --report --json carries the plan statistics and each architecture's tuning row;
#   - `ditc cache build DiT-XL/2 --arch sm_90` fills the cache; ls, verify, clear;
#   - a corrupted cache entry is reported, removed and rebuilt; verify flags another one;
#   - dit-tiny-p2 compiled with its weights runs with `run --plan --backend emu` within 1e-5 of the
#     reference (forward and forward_with_cfg), and from a pack without weights with --weights;
#     compiled for sm_86 and sm_90, both plans (--arch) match it too, as does a MODEL run on emu
#     with --arch; an architecture the pack lacks is a clear error;
#   - a damaged pack, a missing entry, a batch mismatch and --backend cuda without a GPU are clear
#     errors (exit 1), a misspelt architecture a usage error (exit 2).
# DITC_CACHE_DIR points into a temporary folder: the user's cache is never touched.
# Skipped (exit 77, reported by ctest as skipped) when NVRTC is not installed.
set -euo pipefail
: "${DITC:?DITC must name the ditc binary}"
REF=${DITC_SHARED:?DITC_SHARED must name the shared folder}/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
cd "${DITC_SRC:?DITC_SRC must name the source tree}"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export DITC_CACHE_DIR="$TMP/cache"

die() { echo "FAIL: $*" >&2; exit 1; }
expect_fail() {  # MESSAGE-PART COMMAND...: exits 1 (EXPECT_RC) and says MESSAGE-PART
  local want=$1 rc=0
  shift
  "$@" >"$TMP/out" 2>&1 || rc=$?
  [ "$rc" = "${EXPECT_RC:-1}" ] || { cat "$TMP/out"; die "exit $rc, expected ${EXPECT_RC:-1}: $*"; }
  grep -qF -- "$want" "$TMP/out" || { cat "$TMP/out"; die "no '$want' in the message of: $*"; }
  echo "ok   refused: $(head -c 160 "$TMP/out" | head -1)"
}

if ! "$DITC" cache build DiT-S/2 --arch sm_90 --set depth=1 --entry forward >"$TMP/probe" 2>&1; then
  if grep -q "NVRTC not found" "$TMP/probe"; then echo "SKIPPED: NVRTC is not installed"; exit 77; fi
  cat "$TMP/probe"; die "cache build failed"
fi
"$DITC" cache clear >/dev/null

# ---- compile for four architectures, then again from the cache ------------------------------
ARCHS=sm_80,sm_86,sm_89,sm_90
"$DITC" compile DiT-S/2 --arch $ARCHS --entry forward -o "$TMP/s2.ditpack" | tee "$TMP/c1"
grep -q "nvrtc: 4 compiled, 0 from cache" "$TMP/c1" || die "first compile: expected 4 compiled"
"$DITC" compile DiT-S/2 --arch $ARCHS --entry forward -o "$TMP/s2b.ditpack" --report --json >"$TMP/rep.json" 2>"$TMP/c2"
grep -q "nvrtc: 0 compiled, 4 from cache" "$TMP/c2" || { cat "$TMP/c2"; die "second compile: expected all hits"; }
cmp "$TMP/s2.ditpack" "$TMP/s2b.ditpack" || die "the same compile gave a different pack"
jq -e '.kernels_per_forward > 50 and .kernels_per_block > 5 and .activation_bytes_moved > 0
       and .peak_activation_bytes > 0 and ([.plans[].tuning] == ["sm_80","sm_86"])
       and ([.plans[].archs | keys] == [["sm_80","sm_90"],["sm_86","sm_89"]])
       and ([.plans[].archs[].tuning] == ["sm_80","sm_90","sm_86","sm_89"])
       and ([.plans[].archs[].kernels[].registers] | all(. > 0))' "$TMP/rep.json" >/dev/null \
  || die "report: $(head -c 400 "$TMP/rep.json")"
echo "ok   DiT-S/2 for $ARCHS: $(jq -c '{kernels_per_forward, kernels_per_block, peak_activation_bytes}' "$TMP/rep.json")"
"$DITC" compile DiT-S/2 --arch sm_90 --entry forward -o "$TMP/s2c.ditpack" --report >"$TMP/rep.txt"
grep -q "launches per forward" "$TMP/rep.txt" || die "text report"
grep -q "plan forward (f32, batch 1, tuning row sm_90)" "$TMP/rep.txt" || die "text report: tuning row"

# ---- the roofline: per step FLOPs (2 x MACs), unit and predicted time, totals per forward -------
grep -q "predicted (roofline" "$TMP/rep.txt" || die "text report: roofline"
macs=$("$DITC" stats DiT-S/2 --batch 2 --json | jq .macs)
DITC_CACHE_DIR="$TMP/rlcache" "$DITC" compile DiT-S/2 --arch sm_90 --entry forward --batch 2 --precision bf16 -o "$TMP/rl.ditpack" --report --json \
  >"$TMP/rl.json" 2>/dev/null
jq -e --argjson macs "$macs" '.plans[0] as $p
  | ($p.flops_per_forward - 2 * $macs | fabs) <= 1e-9 * $macs
  and ([$p.steps[].flops] | add) == $p.flops_per_forward
  and ([$p.predicted[].gpu] == ["A100","L40S","RTX4090","H100","H200"])
  and ([$p.predicted[] | .forward_ms > 0 and (.per_image_ms * 2 - .forward_ms | fabs) < 1e-9] | all)
  and ([$p.steps[] | select(.step == "gemm") | .unit] | unique) == ["tensor core bf16"]
  and ([$p.steps[] | select(.flops == 0) | .unit] | unique) == ["memory"]
  and ($p.predicted[3].forward_ms - ([$p.steps[].predicted.H100.us] | add) / 1000 | fabs) < 1e-6
  and ($p.predicted[3].forward_ms < $p.predicted[0].forward_ms)
  and ($p.predicted[4].forward_ms <= $p.predicted[3].forward_ms)' "$TMP/rl.json" >/dev/null \
  || die "roofline: $(jq -c '.plans[0] | {flops_per_forward, predicted}' "$TMP/rl.json") vs 2 x $macs MACs"
DITC_CACHE_DIR="$TMP/rlcache" "$DITC" compile DiT-S/2 --arch sm_90 --entry forward -o "$TMP/rl32.ditpack" --report --json >"$TMP/rl32.json" 2>/dev/null
jq -e '([.plans[0].steps[] | select(.step == "gemm") | .unit] | unique) == ["SIMT fp32"]' "$TMP/rl32.json" >/dev/null \
  || die "roofline: f32 GEMMs are SIMT"
echo "ok   roofline: FLOPs per forward = 2 x stats MACs, per-step predictions sum to the totals"

# ---- the cache -----------------------------------------------------------------------------------
"$DITC" cache build DiT-XL/2 --arch sm_90 --entry forward | tee "$TMP/xl"
grep -q "nvrtc: 1 compiled, 0 from cache" "$TMP/xl" || die "cache build DiT-XL/2"
"$DITC" cache ls | tee "$TMP/ls"
# per compiled program: the CUBIN and its ptxas report
grep -q "^10 entries" <(tail -1 "$TMP/ls") || die "cache ls: expected 10 entries"
[ "$("$DITC" cache ls --arch sm_86 | tail -1 | cut -d' ' -f1)" = 2 ] || die "cache ls --arch sm_86"
"$DITC" cache verify | grep -q "10 entries ok, 0 bad" || die "cache verify"

# a corrupted CUBIN is reported, thrown away and rebuilt on the next compile
victim=$(find "$DITC_CACHE_DIR/sm_89" -name '*.cubin' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
[ -n "$victim" ] || die "no sm_89 CUBIN in the cache"
printf '\xff' | dd of="$victim" bs=1 seek=5000 conv=notrunc status=none
"$DITC" compile DiT-S/2 --arch $ARCHS --entry forward -o "$TMP/s2.ditpack" >"$TMP/c3" 2>&1
grep -qi "corrupt" "$TMP/c3" || { cat "$TMP/c3"; die "the corrupt entry was not reported"; }
grep -q "nvrtc: 1 compiled, 3 from cache" "$TMP/c3" || { cat "$TMP/c3"; die "the corrupt entry was not rebuilt"; }
cmp "$TMP/s2.ditpack" "$TMP/s2b.ditpack" || die "the rebuilt pack differs"
echo "ok   corrupt cache entry reported and rebuilt"
victim=$(find "$DITC_CACHE_DIR/sm_80" -name '*.cubin' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
truncate -s 1000 "$victim"
expect_fail "1 bad" "$DITC" cache verify
"$DITC" cache verify | grep -q "9 entries ok, 0 bad" || die "verify did not remove the bad entry"
"$DITC" cache clear --arch sm_80 | grep -q "removed 1 entry" || die "cache clear --arch sm_80"
"$DITC" cache clear | grep -q "removed 8 entries" || die "cache clear"
[ "$("$DITC" cache ls | tail -1 | cut -d' ' -f1)" = 0 ] || die "cache not empty after clear"
echo "ok   cache ls / verify / clear"

# ---- a pack on the emulated backend ----------------------------------------------------------------
c=dit-tiny-p2
# shellcheck disable=SC2046
SETS=$(jq -r 'to_entries[] | select(.key | IN("input_size","in_channels","patch_size","hidden_size","depth",
         "num_heads","mlp_ratio","num_classes","learn_sigma")) | "--set \(.key)=\(.value)"' "$REF/$c.json")
# shellcheck disable=SC2086
"$DITC" compile models/dit.dit $SETS --weights "$REF/$c.weights.safetensors" --batch 2 --arch sm_90 \
  -o "$TMP/tiny.ditpack" >/dev/null
"$DITC" run --plan "$TMP/tiny.ditpack" --backend emu --input "$REF/$c.case.safetensors" --output "$TMP/o.safetensors"
"$DITC" compare "$TMP/o.safetensors:out" "$REF/$c.case.safetensors:out" --tol 1e-5
scale=$(jq -r .cfg_scale "$REF/$c.json")
"$DITC" run --plan "$TMP/tiny.ditpack" --backend emu --input "$REF/$c.case.safetensors" --prefix cfg_ \
  --cfg-scale "$scale" --output "$TMP/o.safetensors"
"$DITC" compare "$TMP/o.safetensors:out" "$REF/$c.case.safetensors:cfg_out" --tol 1e-5
# no weights in the pack: bound by name from --weights
# shellcheck disable=SC2086
"$DITC" compile models/dit.dit $SETS --batch 2 --arch sm_90 --entry forward -o "$TMP/tiny-nw.ditpack" >/dev/null
[ "$(stat -c %s "$TMP/tiny-nw.ditpack")" -lt "$(stat -c %s "$TMP/tiny.ditpack")" ] || die "weights in a pack without them"
expect_fail "holds no weights" "$DITC" run --plan "$TMP/tiny-nw.ditpack" --backend emu \
  --input "$REF/$c.case.safetensors" --output "$TMP/o.safetensors"
"$DITC" run --plan "$TMP/tiny-nw.ditpack" --backend emu --weights "$REF/$c.weights.safetensors" \
  --input "$REF/$c.case.safetensors" --output "$TMP/o.safetensors"
"$DITC" compare "$TMP/o.safetensors:out" "$REF/$c.case.safetensors:out" --tol 1e-5
# bf16: GEMMs with bf16 operands and f32 results (d_dtype) through the pack
# shellcheck disable=SC2086
"$DITC" compile models/dit.dit $SETS --weights "$REF/$c.weights.safetensors" --batch 2 --arch sm_90 \
  --precision bf16 --entry forward -o "$TMP/tiny-bf16.ditpack" >/dev/null
"$DITC" run --plan "$TMP/tiny-bf16.ditpack" --backend emu --input "$REF/$c.case.safetensors" --output "$TMP/o.safetensors"
"$DITC" compare "$TMP/o.safetensors:out" "$REF/$c.case.safetensors:out" --tol 1e-2
echo "ok   run --plan --backend emu matches the reference"

# ---- plans per architecture ----------------------------------------------------------------------
# shellcheck disable=SC2086
"$DITC" compile models/dit.dit $SETS --weights "$REF/$c.weights.safetensors" --batch 2 --arch sm_86,sm_90 \
  --entry forward -o "$TMP/tiny-arch.ditpack" --report --json >"$TMP/arch.json" 2>/dev/null
jq -e '([.plans[].tuning] == ["sm_86","sm_90"]) and ([.plans[].archs | keys] == [["sm_86"],["sm_90"]])' \
  "$TMP/arch.json" >/dev/null || die "sm_86,sm_90: expected two plans: $(head -c 300 "$TMP/arch.json")"
for a in sm_86 sm_89 sm_90; do
  rm -f "$TMP/o.safetensors"
  if [ $a = sm_89 ]; then
    expect_fail "has no plan for 'forward' on sm_89: it was compiled for sm_86, sm_90" "$DITC" run \
      --plan "$TMP/tiny-arch.ditpack" --backend emu --arch $a --input "$REF/$c.case.safetensors" --output "$TMP/o.safetensors"
    continue
  fi
  "$DITC" run --plan "$TMP/tiny-arch.ditpack" --backend emu --arch $a --input "$REF/$c.case.safetensors" \
    --output "$TMP/o.safetensors"
  "$DITC" compare "$TMP/o.safetensors:out" "$REF/$c.case.safetensors:out" --tol 1e-5 >/dev/null
done
# shellcheck disable=SC2086
"$DITC" run models/dit.dit $SETS --weights "$REF/$c.weights.safetensors" --backend emu --arch sm_80 \
  --input "$REF/$c.case.safetensors" --output "$TMP/o.safetensors"
"$DITC" compare "$TMP/o.safetensors:out" "$REF/$c.case.safetensors:out" --tol 1e-5 >/dev/null
# rows with the same geometry: one plan for both
# shellcheck disable=SC2086
"$DITC" compile models/dit.dit $SETS --batch 2 --arch sm_80,sm_90 --entry forward -o "$TMP/tiny-shared.ditpack" \
  --report --json >"$TMP/shared.json" 2>/dev/null
jq -e '(.plans | length) == 1 and .plans[0].tuning == "sm_80" and (.plans[0].archs | keys) == ["sm_80","sm_90"]' \
  "$TMP/shared.json" >/dev/null || die "sm_80,sm_90: expected one plan: $(head -c 300 "$TMP/shared.json")"
# shellcheck disable=SC2086
expect_fail "--backend ref runs the graph itself" "$DITC" run models/dit.dit $SETS --weights random --backend ref \
  --arch sm_86 --input "$REF/$c.case.safetensors" --output "$TMP/o.safetensors"
echo "ok   plans per architecture: sm_86 and sm_90 plans both match the reference on emu; sm_80,sm_90 share one"

# ---- clear errors ------------------------------------------------------------------------------------
expect_fail "no plan for 'forward_with_cfg'" "$DITC" run --plan "$TMP/tiny-nw.ditpack" --backend emu \
  --weights "$REF/$c.weights.safetensors" --input "$REF/$c.case.safetensors" --cfg-scale 4 --output "$TMP/o.safetensors"
head -c 100000 "$TMP/tiny.ditpack" >"$TMP/cut.ditpack"
expect_fail "truncated" "$DITC" run --plan "$TMP/cut.ditpack" --backend emu --input "$REF/$c.case.safetensors" \
  --output "$TMP/o.safetensors"
cp "$TMP/tiny.ditpack" "$TMP/flip.ditpack"
printf 'X' | dd of="$TMP/flip.ditpack" bs=1 seek=30000 conv=notrunc status=none
expect_fail "corrupt" "$DITC" run --plan "$TMP/flip.ditpack" --backend emu --input "$REF/$c.case.safetensors" \
  --output "$TMP/o.safetensors"
expect_fail "compiled for batch 2" "$DITC" sample --plan "$TMP/tiny.ditpack" --backend emu --sampler ddim --steps 2 \
  --cfg-scale 4 --labels 1,2,3 --output "$TMP/s.safetensors"
EXPECT_RC=2 expect_fail "--arch" "$DITC" compile DiT-S/2 --arch sm_9x -o "$TMP/x.ditpack"
[ ! -e "$TMP/x.ditpack" ] || die "a failed compile left a file"
if ! "$DITC" run --plan "$TMP/tiny.ditpack" --backend cuda --input "$REF/$c.case.safetensors" \
     --output "$TMP/o.safetensors" >"$TMP/out" 2>&1; then
  grep -q "no NVIDIA driver\|no CUDA device" "$TMP/out" || { cat "$TMP/out"; die "--backend cuda without a GPU"; }
  echo "ok   --backend cuda without a GPU: $(cat "$TMP/out")"
fi
echo "all compile/cache/pack checks passed"
