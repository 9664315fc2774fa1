#!/usr/bin/env bash
# The VAE decoder's fusions, as `compile --report --json` counts them in the vae-tiny plan (f32 and bf16):
# every group norm is one group_norm kernel (statistics per image and group, the affine and SiLU on the
# store; the mid-block attention's without SiLU too), no layernorm or separate affine kernel remains; the
# nearest upsample is folded into the next conv's im2col, which reads the pre-upsample tensor (no concat
# copies, no upsampled tensor stored); the launches stay at the fused plan's 68 (69 at bf16; 84 before).
# Skipped (77) without NVRTC.
source "$(dirname "$0")/common.bash"
for prec in f32 bf16; do
  nvrtc_or_skip "$T/v.$prec.log" "$DITC" compile vae-tiny --precision "$prec" --arch sm_90 --entry decode \
    -o "$T/v.$prec.ditpack" --report --json
  "$DITC" compile vae-tiny --precision "$prec" --arch sm_90 --entry decode -o "$T/v.$prec.ditpack" --report --json \
    >"$T/v.$prec.json" 2>/dev/null || { echo "FAIL: compile --report --json ($prec)"; fail=1; continue; }
  j=$T/v.$prec.json
  was=$fail
  fail=0
  gn=$(jq '[.plans[0].steps[] | select(.step | test("_group_norm$"))] | length' "$j")
  [ "$gn" = 14 ] || { echo "FAIL: $prec: $gn group_norm kernels, want 14 (one per group norm of vae-tiny)"; fail=1; }
  silu=$(jq '[.plans[0].steps[] | select((.step | test("_group_norm$")) and (.node | test(" silu ")))] | length' "$j")
  [ "$silu" = 13 ] || { echo "FAIL: $prec: $silu group_norm kernels end in the SiLU, want 13"; fail=1; }
  ln=$(jq '[.plans[0].steps[] | select(.step | test("layernorm"))] | length' "$j")
  [ "$ln" = 0 ] || { echo "FAIL: $prec: $ln layernorm kernels left (group norms not fused)"; fail=1; }
  cat=$(jq '[.plans[0].steps[] | select(.node | test(" concat "))] | length' "$j")
  [ "$cat" = 0 ] || { echo "FAIL: $prec: $cat concat steps (the upsample's copies are materialised)"; fail=1; }
  # the upsampler conv's im2col reads [1, 64, 8, 8] (the pre-upsample tensor, f32 in both plans: the
  # residual stream), not [1, 64, 16, 16]
  rd=$(jq '[.plans[0].steps[] | select(.node | test("im2col decoder.up_blocks.0.upsamplers.0.conv$"))][0].act_read' "$j")
  [ "$rd" = $((64 * 8 * 8 * 4)) ] || { echo "FAIL: $prec: the upsampler's im2col reads $rd bytes, want $((64 * 8 * 8 * 4))"; fail=1; }
  n=$(jq '.plans[0].kernels_per_forward' "$j")
  want=68; [ "$prec" = f32 ] || want=69 # bf16: the output's cast to f32
  [ "${n:-999}" -le $want ] || { echo "FAIL: $prec: $n launches, want at most $want (84 before the fusions)"; fail=1; }
  [ $fail = 0 ] && echo "ok   vae-tiny $prec: $gn group_norm kernels, upsample folded, $n launches"
  [ "$was" = 0 ] || fail=1
done
exit $fail
