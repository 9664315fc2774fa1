#!/usr/bin/env bash
# Quantised plans through NVRTC, without a GPU:
#   - dit-tiny-p2 with --quantize w8 and w8a8 (scope all) compiles for sm_80, sm_86 and sm_89, and
#     each architecture's plan from the pack runs on the emulated device (run --plan --arch) within
#     the shared cases' tolerances (w8 1e-4, w8a8 1e-3): the pack holds the int8 weights and scales;
#   - DiT-S/2's pack with --quantize w8 --quantize-scope all is at most 30% of its f32 pack;
#   - the quantised plans launch at most 2 kernels a block more than the float plan (compile --report:
#     the producers write the quantised rows, the w8 GEMM reads the int8 weights itself);
#   - w8a8's DiT-S/2 plan runs every block linear as an IMMA GEMM step (no qlinear kernel);
#   - fp8's DiT-S/2 plan (activation scales given: no calibration run) compiles for sm_89 and sm_90,
#     runs every block linear as an FP8 GEMM step (no qlinear_e4m3 kernel) and launches at most 2
#     kernels a block more than the float plan in both.
# Skipped (exit 77) when NVRTC is not installed.
source "$(dirname "$0")/common.bash"
REF=${DITC_SHARED:?DITC_SHARED must name the shared folder}/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
TINY=(models/dit.dit --set input_size=16 --set in_channels=4 --set patch_size=2 --set hidden_size=64 --set depth=2
      --set num_heads=4 --set mlp_ratio=4.0 --set num_classes=10 --set learn_sigma=true)

nvrtc_or_skip "$T/first.log" "$DITC" compile "${TINY[@]}" --arch sm_80,sm_86,sm_89 --batch 2 \
  --weights "$REF/dit-tiny-p2.weights.safetensors" -o "$T/w8.ditpack" --quantize w8 --quantize-scope all
"$DITC" compile "${TINY[@]}" --arch sm_80,sm_86,sm_89 --batch 2 --weights "$REF/dit-tiny-p2.weights.safetensors" \
  -o "$T/w8a8.ditpack" --quantize w8a8 --quantize-scope all >/dev/null || fail=1
for m in w8 w8a8; do
  tol=1e-4
  [ $m = w8a8 ] && tol=1e-3
  # scope all quantises more than the shared case (blocks only): compare with a ref run of the same
  "$DITC" run "${TINY[@]}" --weights "$REF/dit-tiny-p2.weights.safetensors" --input "$REF/dit-tiny-p2.case.safetensors" \
    --output "$T/$m.ref.safetensors" --backend ref --quantize $m --quantize-scope all || fail=1
  for a in sm_80 sm_86 sm_89; do
    "$DITC" run --plan "$T/$m.ditpack" --backend emu --arch $a --input "$REF/dit-tiny-p2.case.safetensors" \
      --output "$T/$m.$a.safetensors" || fail=1
    "$DITC" compare "$T/$m.$a.safetensors:out" "$T/$m.ref.safetensors:out" --tol $tol || fail=1
  done
done

# the size bound: int8 weights with their scales, every linear
"$DITC" compile DiT-S/2 --arch sm_80 --entry forward --weights random -o "$T/s2.ditpack" --report --json \
  >"$T/s2.json" || fail=1
"$DITC" compile DiT-S/2 --arch sm_80 --entry forward --weights random -o "$T/s2w8.ditpack" --quantize w8 \
  --quantize-scope all --report --json >"$T/s2w8.json" || fail=1
"$DITC" compile DiT-S/2 --arch sm_80 --entry forward --weights random -o "$T/s2w8a8.ditpack" --quantize w8a8 \
  --report --json >"$T/s2w8a8.json" || fail=1
kpb() { jq -r '.plans[0].kernels_per_block' "$1"; }
base=$(kpb "$T/s2.json")
for m in w8 w8a8; do
  k=$(kpb "$T/s2$m.json")
  echo "DiT-S/2 kernels a block: float $base, $m $k"
  [ -n "$base" ] && [ "$k" -le $((base + 2)) ] 2>/dev/null || { echo "FAIL: $m launches $k kernels a block (float $base)"; fail=1; }
done
# w8a8's int8 products run as cuBLASLt IMMA GEMM steps: qkv, proj, fc1, fc2 in each of the 12 blocks,
# no qlinear kernel left (their scales applied by the attention, epilogue and layernorm kernels)
imma=$(jq '[.plans[0].steps[] | select(.unit == "tensor core int8")] | length' "$T/s2w8a8.json")
ql=$(jq '[.plans[0].steps[] | select(.step | test("_qlinear(_gelu)?$"))] | length' "$T/s2w8a8.json")
echo "DiT-S/2 w8a8: $imma IMMA GEMM steps, $ql qlinear kernel launches"
[ "$imma" = 48 ] && [ "$ql" = 0 ] || { echo "FAIL: expected 48 IMMA GEMM steps and no qlinear kernel"; fail=1; }
sc=$(printf '3c000000.%.0s' $(seq 48))
P="canonicalize,fold-constants,cse,hoist-adaln,route-experts,conv-gemm,canonicalize,dce,quantize:mode=fp8:scales=${sc%.},fuse,plan-memory"
"$DITC" compile DiT-S/2 --arch sm_89,sm_90 --entry forward --weights random -o "$T/s2fp8.ditpack" --passes "$P" \
  --report --json >"$T/s2fp8.json" || fail=1
for i in 0 1; do
  k=$(jq -r ".plans[$i].kernels_per_block" "$T/s2fp8.json")
  fp8=$(jq "[.plans[$i].steps[] | select(.unit == \"tensor core fp8\")] | length" "$T/s2fp8.json")
  ql=$(jq "[.plans[$i].steps[] | select(.step | test(\"_qlinear_e4m3\$\"))] | length" "$T/s2fp8.json")
  echo "DiT-S/2 fp8 plan $i: $k kernels a block (float $base), $fp8 FP8 GEMM steps, $ql qlinear_e4m3 kernel launches"
  [ -n "$base" ] && [ "$k" -le $((base + 2)) ] 2>/dev/null || { echo "FAIL: fp8 launches $k kernels a block"; fail=1; }
  [ "$fp8" = 48 ] && [ "$ql" = 0 ] || { echo "FAIL: expected 48 FP8 GEMM steps and no qlinear_e4m3 kernel"; fail=1; }
done
f32=$(stat -c %s "$T/s2.ditpack")
w8=$(stat -c %s "$T/s2w8.ditpack")
echo "DiT-S/2 pack: f32 $f32 bytes, w8 scope all $w8 bytes ($((100 * w8 / f32))%)"
[ $((100 * w8)) -le $((30 * f32)) ] || { echo "FAIL: the w8 pack is above 30% of the f32 pack"; fail=1; }
# the routed experts are block linears too: with w8 (scope blocks) no f32 expert weight is stored, so a
# MoE model whose experts hold most of its weights shrinks below half (f32 experts would keep it
# above 70%); its plan runs the grouped GEMM that reads the int8 weights (moe_wlinear)
MOE=(DiT-S/2 --set depth=1 --set moe_experts=4 --set moe_top_k=2 --arch sm_80 --entry forward --weights random)
"$DITC" compile "${MOE[@]}" -o "$T/moe.ditpack" >/dev/null || fail=1
"$DITC" compile "${MOE[@]}" -o "$T/moew8.ditpack" --quantize w8 --report --json >"$T/moew8.json" || fail=1
mf=$(stat -c %s "$T/moe.ditpack")
mw=$(stat -c %s "$T/moew8.ditpack")
wm=$(jq '[.plans[0].steps[] | select(.step | test("moe_wlinear"))] | length' "$T/moew8.json")
echo "MoE (4 experts) pack: f32 $mf bytes, w8 $mw bytes ($((100 * mw / mf))%), $wm int8 grouped GEMM launches"
[ $((100 * mw)) -le $((50 * mf)) ] || { echo "FAIL: the MoE w8 pack keeps f32 expert weights"; fail=1; }
[ "$wm" = 2 ] || { echo "FAIL: expected fc1 and fc2 of the experts as int8 grouped GEMMs (moe_wlinear)"; fail=1; }
exit $fail
