#!/usr/bin/env bash
# --quantize and --quantize-scope refused as they should be, without NVRTC: a mode or scope ditc does
# not know (int4, some) is a usage error (exit 2) naming the value and the accepted ones; fp8 for an
# architecture below sm_89 (compile and cache build --arch sm_80) says so; --quantize-scope alone,
# --quantize with a quantize pass in --passes too, --quantize with --plan, and fp8 without calibration data are clear
# errors; none of them writes an output file.  `ditc ir --quantize w8a8` prints the same graph as
# the pass spelled in --passes at the flag's place, and dumps show the i8 values and their scales.
source "$(dirname "$0")/common.bash"
TINY=(models/dit.dit --set depth=1 --set hidden_size=64 --set num_heads=4 --set input_size=16)

# expect RC MESSAGE-PART ARGS...: ditc ARGS exits RC, says MESSAGE-PART, writes no $T/out.*
expect() {
  local rc=$1 want=$2 got=0
  shift 2
  "$DITC" "$@" >"$T/log" 2>&1 || got=$?
  if [ "$got" != "$rc" ] || ! grep -qF -- "$want" "$T/log"; then
    echo "FAIL: ditc $* exited $got (expected $rc) or did not say '$want':"
    cat "$T/log"
    fail=1
  fi
  if compgen -G "$T/out.*" >/dev/null; then echo "FAIL: ditc $* left an output file"; ls "$T"; fail=1; fi
}

expect 2 "--quantize takes none|w8|w8a8|fp8, got 'int4'" compile "${TINY[@]}" --arch sm_80 -o "$T/out.ditpack" --quantize int4
expect 2 "--quantize-scope takes blocks|all, got 'some'" compile "${TINY[@]}" --arch sm_80 -o "$T/out.ditpack" \
  --quantize w8 --quantize-scope some
expect 2 "--quantize-scope takes blocks|all, got 'some'" run "${TINY[@]}" --weights random --input x \
  --output "$T/out.safetensors" --quantize w8 --quantize-scope some
expect 2 "--quantize fp8 needs sm_89 or later (e4m3 tensor cores), --arch names sm_80" compile "${TINY[@]}" \
  --arch sm_90,sm_80 -o "$T/out.ditpack" --quantize fp8
expect 2 "--quantize fp8 needs sm_89 or later" cache build "${TINY[@]}" --arch sm_80 --quantize fp8
expect 2 "--quantize fp8 needs sm_89 or later" compile "${TINY[@]}" --arch sm_86 -o "$T/out.ditpack" \
  --passes 'default,quantize:mode=fp8'
expect 2 "--quantize-scope goes with --quantize" ir "${TINY[@]}" --quantize-scope all
expect 2 "--quantize and a quantize pass in --passes" ir "${TINY[@]}" --quantize w8 --passes 'default,quantize:mode=w8'
expect 2 "option 'mode' takes one of none|w8|w8a8|fp8, got 'int4'" ir "${TINY[@]}" --passes 'default,quantize:mode=int4'
# (a command with --weights measures them: --calibrate; ir has no weights to measure with)
expect 1 "--quantize fp8 needs calibration data (--calibrate N)" ir "${TINY[@]}" --quantize fp8
expect 2 "'cache ls' takes only --arch" cache ls --quantize w8
expect 1 "--quantize and --precision do not apply to a pack" run --plan "$T/none.ditpack" --backend emu --input x \
  --output "$T/out.safetensors" --quantize w8

# the flag is the pass at its place in the default pipeline
"$DITC" ir "${TINY[@]}" --quantize w8a8 --quantize-scope all >"$T/flag.ir"
"$DITC" ir "${TINY[@]}" --passes \
  'canonicalize,fold-constants,cse,hoist-adaln,route-experts,canonicalize,dce,quantize:mode=w8a8:scope=all,fuse,plan-memory' \
  >"$T/passes.ir"
cmp -s "$T/flag.ir" "$T/passes.ir" || { echo "FAIL: --quantize and --passes give different graphs"; diff "$T/flag.ir" "$T/passes.ir"; fail=1; }
for want in 'qscale(' '{axis=1, qmax=127} : f32[192, 1]' ': i8[B, 64, 64]' 'qlinear(' '# t_embedder.mlp.0' '# final_layer.linear'; do
  grep -qF -- "$want" "$T/flag.ir" || { echo "FAIL: the w8a8 dump lacks '$want'"; fail=1; }
done
# scope blocks leaves the embedders, adaLN and the final layer in float
"$DITC" ir "${TINY[@]}" --quantize w8 >"$T/blocks.ir"
[ "$(grep -c 'dequantize(' "$T/blocks.ir")" = 4 ] || { echo "FAIL: scope blocks should dequantize 4 weights"; fail=1; }
if grep 'dequantize(' "$T/blocks.ir" | grep -qv '# blocks\.'; then echo "FAIL: scope blocks reached outside the blocks"; fail=1; fi
# fp8 with its activation scales given (the pass's recorded decision; depth 1: four linears): e4m3 values
sc=3c000000.3c000000.3c000000.3c000000
"$DITC" ir "${TINY[@]}" --passes "default,quantize:mode=fp8:scales=$sc" >"$T/fp8.ir"
for want in 'quantize_e4m3(' ': e4m3[B, 64, 64]' 'qlinear_e4m3(' '{axis=0, qmax=448} : f32[1, 1]'; do
  grep -qF -- "$want" "$T/fp8.ir" || { echo "FAIL: the fp8 dump lacks '$want'"; fail=1; }
done
expect 1 "more words than the 4 linears" ir "${TINY[@]}" --passes "default,quantize:mode=fp8:scales=$sc.3c000000"
exit $fail
