#!/usr/bin/env bash
# Hostile input gets a clear message, a non-zero exit and no output file: missing and lying
# checkpoints, truncated files, impossible --set values, bad flags, bad pipelines.  Every message
# has one form, `ditc: error: ...`; a usage error (exit 2) then says where the usage is.
: "${DITC_SHARED:?}"
REF=$DITC_SHARED/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
source "$DITC_SRC/tests/cli/common.bash"
TINY=(--set input_size=16 --set in_channels=4 --set patch_size=2 --set hidden_size=64 --set depth=2 --set num_heads=4 --set num_classes=10)

# ---- usage errors: exit 2, `ditc: error: ...`, then where the usage is --------------------------
expect 2 "^ditc: error: no command given" -- "$DITC"
expect 2 "^ditc: error: unknown command 'frobnicate'" -- "$DITC" frobnicate
expect 2 "^ditc: error: unknown option '--bogus' for 'stats'" -- "$DITC" stats DiT-S/2 --bogus
expect 2 "^run \`ditc run --help\`" -- "$DITC" run DiT-S/2 --frobnicate
expect 2 "'ir' does not take --weights" -- "$DITC" ir DiT-S/2 --weights random
expect 2 "--steps takes a whole number in 1..100000, got 'many'" -- "$DITC" sample DiT-digits --steps many
expect 2 "--json takes no value" -- "$DITC" stats DiT-S/2 --json=1
expect 2 "needs a value" -- "$DITC" run DiT-S/2 --weights
expect 2 "'stats' needs a MODEL" -- "$DITC" stats
expect 2 "unexpected argument 'DiT-S/4'" -- "$DITC" stats DiT-S/2 DiT-S/4
expect 2 "give MODEL or --plan, not both" -- "$DITC" run DiT-S/2 --plan x.ditpack
expect 2 "cache takes build, ls, verify or clear, got 'purge'" -- "$DITC" cache purge
expect 2 "'cache ls' takes only --arch" -- "$DITC" cache ls --batch 2
expect 2 "no command or topic 'frobnicate'" -- "$DITC" help frobnicate
expect 2 "--sampler takes ddpm\|ddim, got 'euler'" -- "$DITC" sample DiT-digits --sampler euler
# dtypes in any spelling; a dtype that is none of them
expect 2 "--precision takes f32\|f16\|bf16 \(also written fp32, .*\), got 'fp8'" -- "$DITC" run DiT-S/2 --precision fp8
expect 2 "--weight-dtype takes f32\|f16\|bf16\|i8" -- "$DITC" stats DiT-S/2 --weight-dtype int4
for p in fp16:f16 f16:f16 float16:f16 half:f16 FP16:f16 bf16:bf16 bfloat16:bf16; do
  # accepted, and known by its canonical name: ref refuses it by that name
  expect 1 "--precision ${p#*:} needs --backend emu or cuda" -- "$DITC" run DiT-S/2 --weights random --backend ref \
    --precision "${p%%:*}" --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
done
for p in fp32 f32 float32; do
  [ "$("$DITC" stats DiT-S/2 --json --weight-dtype $p | jq -r .weight_dtype)" = f32 ] || { echo "FAIL --weight-dtype $p"; fail=1; }
done
for p in fp16:f16 half:f16 bfloat16:bf16 int8:i8; do
  [ "$("$DITC" stats DiT-S/2 --json --weight-dtype "${p%%:*}" | jq -r .weight_dtype)" = "${p#*:}" ] \
    || { echo "FAIL --weight-dtype ${p%%:*}"; fail=1; }
done
echo "ok   dtype spellings"

# ---- pipelines: checked before anything runs, pass and option named ------------------------------
expect 2 "^ditc: error: pass 'cse' has no option 'no_such_option' \(it takes none\)" -- \
  "$DITC" ir DiT-S/2 --passes 'cse:no_such_option=1'
expect 2 "^run \`ditc ir --passes-help\`" -- "$DITC" ir DiT-S/2 --passes 'cse:no_such_option=1'
expect 2 "^ditc: error: unknown pass 'frobnicate' \(known: canonicalize, " -- "$DITC" stats DiT-S/2 --passes cse,frobnicate
expect 2 "'default' takes no options" -- "$DITC" check DiT-S/2 --passes default:x=1
expect 2 "--dump-after: unknown pass 'csee'" -- "$DITC" ir DiT-S/2 --dump-after csee
expect 2 "--dump-after cse: the pipeline \(--passes none\) does not run 'cse'" -- \
  "$DITC" ir DiT-S/2 --passes none --dump-after cse
# a bad pipeline fails before the model is even read
expect 2 "unknown pass 'frobnicate'" -- "$DITC" run models/no-such.dit --weights "$T/no-such" --passes frobnicate \
  --input "$T/no-such" --output "$T/out.safetensors"

# ---- errors: exit 1 ------------------------------------------------------------------------------
expect 1 "num_heads" -- "$DITC" stats DiT-S/2 --set num_heads=5
expect 1 "unknown|no parameter|not a parameter" -- "$DITC" stats DiT-S/2 --set num_hedas=6
expect 1 "abc" -- "$DITC" stats DiT-S/2 --set depth=abc
expect 1 "no-such|No such file|cannot" -- "$DITC" stats models/no-such.dit
expect 1 "No such file|cannot open|no-such" -- "$DITC" run models/dit.dit "${TINY[@]}" --weights "$T/no-such.safetensors" \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"

# A truncated checkpoint.
# an entry the model lacks (any command); run --entry reads the entry's inputs by name
expect 1 "model 'dit' has no entry 'backward' \(its entries: forward, forward_with_cfg\)" -- "$DITC" stats DiT-S/2 --entry backward
expect 1 "model 'vae' has no entry 'forward' \(its entries: decode\)" -- "$DITC" run vae-tiny --entry forward \
  --weights random --input "$REF/vae-tiny.case.safetensors" --output "$T/out.safetensors"
expect 1 "dit-tiny-p2.case.safetensors: no tensor 'z' \(the model's input 'z'\)" -- "$DITC" run vae-tiny --entry decode \
  --weights random --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
expect 1 "the forward_with_cfg entry takes a guidance scale: give --cfg-scale" -- "$DITC" run models/dit.dit "${TINY[@]}" \
  --entry forward_with_cfg --weights random --input "$REF/dit-tiny-p2.case.safetensors" --prefix cfg_ --output "$T/out.safetensors"
# VAE weights that do not fit the configuration: every mismatch listed
expect 1 "checkpoint does not fit the model \(72 missing, 65 mismatched, 2 unexpected\)" -- "$DITC" run sd-vae-ft-ema --set latent_size=8 \
  --weights "$REF/vae-tiny.weights.safetensors" --input "$REF/vae-tiny.case.safetensors" --output "$T/out.safetensors"
head -c 5000 "$REF/dit-tiny-p2.weights.safetensors" >"$T/trunc.safetensors"
expect 1 "trunc.safetensors" -- "$DITC" run models/dit.dit "${TINY[@]}" --weights "$T/trunc.safetensors" \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# A lying header: claims more data than the file has.
printf '\x40\x00\x00\x00\x00\x00\x00\x00{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}   ' >"$T/lie.safetensors"
expect 1 "lie.safetensors" -- "$DITC" run models/dit.dit "${TINY[@]}" --weights "$T/lie.safetensors" \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# The right file for the wrong model: every mismatch reported.
expect 1 "blocks.0.attn.qkv.weight" -- "$DITC" run models/dit.dit "${TINY[@]}" --set hidden_size=96 --set num_heads=6 \
  --weights "$REF/dit-tiny-p2.weights.safetensors" --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# Inputs that do not fit the model.
expect 1 "input 'x'|x" -- "$DITC" run models/dit.dit "${TINY[@]}" --set input_size=32 --weights random \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.safetensors"
# An output into a directory that does not exist.
expect 1 "no-dir" -- "$DITC" sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 2 \
  --cfg-scale 1.5 --labels 0,1 --output "$T/no-dir/out.png"
expect 1 "label 11|outside" -- "$DITC" sample models/dit.dit "${TINY[@]}" --weights random --sampler ddim --steps 2 \
  --cfg-scale 1.5 --labels 0,11 --output "$T/out.png"
expect 1 "random:x|seed" -- "$DITC" check models/dit.dit "${TINY[@]}" --weights random:x
exit $fail
