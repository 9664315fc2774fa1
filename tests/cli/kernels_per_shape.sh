#!/usr/bin/env bash
# One kernel per shape: kernels whose text would differ only in where their operands live are one
# kernel, each launch passing its offsets as parameters.  DiT-XL/2 (28 identical blocks) compiles to
# at most 24 distinct kernels per plan, at f32 and at bf16 (where attention is the tensor-core
# kernel), as `compile --report --json` counts them; the report gives each architecture's CUBIN
# bytes; DiT-S/2 (12 blocks) and DiT-XL/2 (28) have the same kernels per plan.
# Skipped (77) without NVRTC.
source "$(dirname "$0")/common.bash"
for prec in f32 bf16; do
  nvrtc_or_skip "$T/xl.$prec.log" "$DITC" compile DiT-XL/2 --precision "$prec" --arch sm_80,sm_90 --entry forward \
    -o "$T/xl.$prec.ditpack" --report --json
  "$DITC" compile DiT-XL/2 --precision "$prec" --arch sm_80,sm_90 --entry forward -o "$T/xl.$prec.ditpack" \
    --report --json >"$T/xl.$prec.json" 2>/dev/null || { echo "FAIL: compile --report --json ($prec)"; fail=1; }
  n=$(jq '[.plans[].kernels] | max' "$T/xl.$prec.json")
  [ -n "$n" ] && [ "$n" -le 24 ] || { echo "FAIL: DiT-XL/2 $prec has $n distinct kernels (at most 24)"; fail=1; }
  for a in sm_80 sm_90; do
    b=$(jq ".plans[0].archs.$a.cubin_bytes" "$T/xl.$prec.json")
    [ "${b:-0}" -gt 0 ] || { echo "FAIL: no CUBIN bytes for $a ($prec)"; fail=1; }
  done
  "$DITC" compile DiT-S/2 --precision "$prec" --arch sm_90 --entry forward -o "$T/s.$prec.ditpack" --report --json \
    >"$T/s.$prec.json" 2>/dev/null || { echo "FAIL: DiT-S/2 compile ($prec)"; fail=1; }
  s=$(jq '.plans[0].kernels' "$T/s.$prec.json")
  x=$(jq '.plans[0].kernels' "$T/xl.$prec.json")
  [ "$s" = "$x" ] || { echo "FAIL: DiT-S/2 has $s kernels, DiT-XL/2 $x ($prec): depth should not add kernels"; fail=1; }
  echo "ok   DiT-XL/2 $prec: $x distinct kernels"
done
# the text report says it too
"$DITC" compile DiT-XL/2 --precision bf16 --arch sm_90 --entry forward -o "$T/xl.txt.ditpack" --report >"$T/rep" 2>&1
grep -Eq "; [0-9]+ distinct kernels\)" "$T/rep" || { echo "FAIL: the text report does not count distinct kernels"; fail=1; }
grep -Eq "sm_90: tuning row sm_90, CUBIN [0-9]+ bytes" "$T/rep" || { echo "FAIL: the text report lacks CUBIN bytes"; fail=1; }
exit $fail
