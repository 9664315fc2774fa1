#!/usr/bin/env bash
# dit-tiny-p2-pass-w8: weight-only int8 (--quantize w8, the blocks' linears) against the original DiT
# code with those weights, forward and forward_with_cfg within 1e-4 on the reference executor; the
# same pass spelled in --passes at the flag's place gives the same bits.
source "$(dirname "$0")/common.bash"
check_pass dit-tiny-p2-pass-w8 1e-4 --quantize w8
c=dit-tiny-p2-pass-w8
# shellcheck disable=SC2046
"$DITC" run models/dit.dit $(settings "$c") --weights "$REF/dit-tiny-p2.weights.safetensors" \
  --input "$REF/$c.case.safetensors" --output "$TMP/passes.safetensors" --backend ref \
  --passes 'canonicalize,fold-constants,cse,hoist-adaln,route-experts,canonicalize,dce,quantize:mode=w8,fuse,plan-memory'
"$DITC" compare "$TMP/passes.safetensors:out" "$TMP/$c.out.safetensors:out" --tol 0
