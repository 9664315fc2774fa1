#!/usr/bin/env bash
# Step caching (sample --cache-interval N [--cache-warmup W], passes/step_cache.c) on the trained
# digits model: interval 1 gives exactly the uncached samples (ref and emu, byte for byte);
# interval 2 on emu matches ref (f32, 1e-5) and its device loop the emu host loop exactly;
# `stats --cache-interval` counts MACs per image as full-step MACs x full steps + cached-step
# MACs x cached steps, so interval 2 halves the blocks' MACs; bad inputs are refused, no file.
source "$(dirname "$0")/step_cache.bash"
ARGS=(--weights "$W" --sampler ddpm --steps 6 --cfg-scale 1.5 --labels 3,8 --seed 5)

# interval 1: every step full, the samples of the uncached run exactly
for be in ref emu; do
  "$DITC" sample "$M" "${ARGS[@]}" --backend "$be" -o "$TMP/u.$be.safetensors"
  "$DITC" sample "$M" "${ARGS[@]}" --backend "$be" --cache-interval 1 -o "$TMP/c1.$be.safetensors"
  cmp "$TMP/u.$be.safetensors" "$TMP/c1.$be.safetensors" || { echo "FAIL: --cache-interval 1 on $be differs"; exit 1; }
done

# interval 2 (and a warm-up): emu's device loop against ref, and against emu's host loop
for wu in 0 1; do
  "$DITC" sample "$M" "${ARGS[@]}" --backend ref --cache-interval 2 --cache-warmup $wu -o "$TMP/c2.ref.safetensors"
  "$DITC" sample "$M" "${ARGS[@]}" --backend emu --cache-interval 2 --cache-warmup $wu -o "$TMP/c2.emu.safetensors" \
    2>"$TMP/emu.log"
  if grep -q "sampling on the host" "$TMP/emu.log"; then echo "FAIL: emu fell back to the host loop"; cat "$TMP/emu.log"; exit 1; fi
  DITC_SAMPLE_ON_HOST=1 "$DITC" sample "$M" "${ARGS[@]}" --backend emu --cache-interval 2 --cache-warmup $wu \
    -o "$TMP/c2.host.safetensors"
  "$DITC" compare "$TMP/c2.emu.safetensors:samples" "$TMP/c2.ref.safetensors:samples" --tol 1e-5
  cmp "$TMP/c2.emu.safetensors" "$TMP/c2.host.safetensors" || { echo "FAIL: emu device and host loops differ"; exit 1; }
  # caching changes the samples (the reused deltas are a step old)
  if cmp -s "$TMP/c2.ref.safetensors" "$TMP/u.ref.safetensors"; then echo "FAIL: interval 2 = uncached"; exit 1; fi
done

# --num-samples: batches of the sampler loop, each with its own full first step
"$DITC" sample "$M" --weights "$W" --sampler ddim --steps 4 --cfg-scale 1.5 --num-samples 3 --batch 2 \
  --cache-interval 2 --backend ref -o "$TMP/s.npz" 2>/dev/null
[ -s "$TMP/s.npz" ] || { echo "FAIL: no .npz"; exit 1; }

# MACs per image: the formula, for S steps, interval N, warm-up W: F = W + ceil((S - W) / N) full steps
check_macs() {  # S N W ENTRY
  local S=$1 N=$2 Wu=$3 e=$4 j plain
  j=$("$DITC" stats "$M" --entry "$e" --steps "$S" --cache-interval "$N" --cache-warmup "$Wu" --json)
  plain=$("$DITC" stats "$M" --entry "$e" --json | jq .macs)
  jq -e --argjson S "$S" --argjson N "$N" --argjson W "$Wu" --argjson plain "$plain" '
    ($W + (($S - $W + $N - 1) / $N | floor)) as $F
    | .full_steps == $F and .cached_steps == $S - $F and .macs_full_step == $plain
      and .macs_cached_step < .macs_full_step
      and .macs_per_image == .macs_full_step * $F + .macs_cached_step * ($S - $F)
      and .macs_per_image_uncached == $plain * $S
      and .block_macs_per_image == (.macs_full_step - .macs_cached_step) * $F
      and .block_macs_per_image_uncached == (.macs_full_step - .macs_cached_step) * $S' <<<"$j" >/dev/null ||
    { echo "FAIL: stats --steps $S --cache-interval $N --cache-warmup $Wu --entry $e: $j"; exit 1; }
}
check_macs 50 2 0 forward
check_macs 50 2 0 forward_with_cfg
check_macs 50 3 4 forward
check_macs 7 2 7 forward
# interval 2 over an even number of steps halves the blocks' MACs exactly
j=$("$DITC" stats "$M" --steps 50 --cache-interval 2 --json)
jq -e '.block_macs_per_image * 2 == .block_macs_per_image_uncached and .full_steps == 25' <<<"$j" >/dev/null ||
  { echo "FAIL: interval 2 does not halve the blocks' MACs: $j"; exit 1; }
# the cached step runs the embedders, the final layer and its adaLN: for DiT-digits (D 128, p 2, 64
# tokens, 8 output channels a patch, frequency 256): 64*128*4 + 256*128 + 128*128 + 128*256 + 64*128*8
jq -e '.macs_cached_step == (64*128*4 + 256*128 + 128*128 + 128*256 + 64*128*8)' <<<"$j" >/dev/null ||
  { echo "FAIL: cached step MACs: $j"; exit 1; }

# --entry ENTRY.cache_step / .cache_full on stats and bench: one step of each (what `sample` runs)
jq -e --argjson c "$(jq .macs_cached_step <<<"$j")" '.macs == $c' \
  <<<"$("$DITC" stats "$M" --entry forward.cache_step --json)" >/dev/null || { echo "FAIL: stats --entry forward.cache_step"; exit 1; }
for e in forward_with_cfg.cache_full forward_with_cfg.cache_step; do
  "$DITC" bench "$M" --entry "$e" --weights "$W" --batch 2 --iters 1 --report | jq -e --arg e "$e" '.entry == $e' >/dev/null
done

# bad inputs: a `ditc: error:` naming the flag and value, non-zero exit, no output file
refuse() {  # PATTERN ARGS...
  local pat=$1
  shift
  if "$DITC" "$@" -o "$TMP/bad.safetensors" 2>"$TMP/err"; then echo "FAIL: accepted: $*"; exit 1; fi
  grep -q "ditc: error: .*$pat" "$TMP/err" || { echo "FAIL: $*: message"; cat "$TMP/err"; exit 1; }
  [ ! -e "$TMP/bad.safetensors" ] || { echo "FAIL: $*: wrote a file"; exit 1; }
}
refuse "--cache-interval .*'0'" sample "$M" "${ARGS[@]}" --cache-interval 0
refuse "--cache-interval .*'-1'" sample "$M" "${ARGS[@]}" --cache-interval -1
refuse "--cache-interval .*'two'" sample "$M" "${ARGS[@]}" --cache-interval two
refuse "--cache-warmup 7 is more than the 6" sample "$M" "${ARGS[@]}" --cache-interval 2 --cache-warmup 7
refuse "--cache-warmup 1 goes with --cache-interval" sample "$M" "${ARGS[@]}" --cache-warmup 1
refuse "'run' does not take --cache-interval" run "$M" --weights "$W" --input x --cache-interval 2
refuse "does not take --cache-interval" bench "$M" --cache-interval 2
cat >"$TMP/noblocks.dit" <<'M'
model noblocks(in_channels: int = 1, input_size: int = 4, num_classes: int = 2) {
  entry forward(x: f32[B, in_channels, input_size, input_size], t: f32[B], y: i32[B]) {
    return x * 2.0
  }
}
M
refuse "--cache-interval 2: .*no blocks to cache" sample "$TMP/noblocks.dit" --weights random --sampler ddim --steps 4 \
  --cfg-scale 1 --labels 0 --cache-interval 2
if "$DITC" stats "$TMP/noblocks.dit" --steps 4 --cache-interval 2 2>"$TMP/err"; then echo "FAIL: stats accepted"; exit 1; fi
grep -q "ditc: error: --cache-interval 2: .*no blocks" "$TMP/err" || { cat "$TMP/err"; exit 1; }
if "$DITC" stats "$M" --cache-interval 2 2>"$TMP/err"; then echo "FAIL: stats without --steps"; exit 1; fi
grep -q "ditc: error: .*--steps" "$TMP/err" || { cat "$TMP/err"; exit 1; }
echo OK
