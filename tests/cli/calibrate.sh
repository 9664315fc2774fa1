#!/usr/bin/env bash
# Calibration (issue 10, --calibrate N): the passes that read statistics measured on the model's own
# sampler (prune-blocks, criterion=calib of prune-heads and prune-mlp) on the trained digits model.
# The statistics are deterministic and cached (a second run reads them, a corrupt entry is removed and
# measured again); --prune-blocks 1 drops the block with the smallest delta, recorded as `select`
# (the same select spelled out builds the same model) and gives depth-1 blocks; criterion=calib
# decides otherwise than l2 and each pass alone on emu matches its own reference-executor result;
# bad values are refused.
source "$(dirname "$0")/common.bash"
W=models/digits/dit-digits.safetensors
[ -f "$W" ] || { echo "SKIPPED: $W is not there"; exit 77; }
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 # the same reductions every run

ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
pipe() { echo "canonicalize,fold-constants,cse,$1,hoist-adaln,route-experts,conv-gemm,canonicalize,dce,fuse,plan-memory"; }
# sample NAME BACKEND FLAG...: 4 digits, DDPM 3 steps, guidance 1.5, calibrated on 2 samples
sample() {
  local name=$1 be=$2
  shift 2
  "$DITC" sample DiT-digits --weights "$W" --sampler ddpm --steps 3 --cfg-scale 1.5 --labels 0-3 --calibrate 2 \
    --backend "$be" --output "$T/$name.safetensors" "$@" 2>"$T/$name.err"
}
same() { "$DITC" compare "$T/$1.safetensors:samples" "$T/$2.safetensors:samples" --tol "$3" >/dev/null 2>&1; }
entries() { find "$DITC_CACHE_DIR/calib" -name '*.txt' 2>/dev/null | wc -l; }

# ---- the statistics: measured once, cached, deterministic ---------------------------------------
sample blocks ref --prune-blocks 1 || { cat "$T/blocks.err"; bad "sample --prune-blocks 1 on ref"; exit 1; }
grep -q "calibration: running 2 samples, ddpm 3 steps of 1000, guidance 1.5, labels 0,1, seed 0 on the reference executor" "$T/blocks.err" &&
  grep -q "cached in $DITC_CACHE_DIR/calib/" "$T/blocks.err" && ok "calibration says what it runs and where it is cached" ||
  bad "calibration message: $(cat "$T/blocks.err")"
[ "$(entries)" = 1 ] && ok "one cache entry" || bad "$(entries) cache entries, want 1"
entry=$(find "$DITC_CACHE_DIR/calib" -name '*.txt')
for s in attn.0.head_out mlp.3.act_abs block.3.delta linear.blocks.0.attn.qkv.weight.absmax linear.blocks.3.mlp.fc2.weight.absmax; do
  grep -q "^$s " "$entry" || bad "no statistic $s"
done
[ "$(awk '$1=="attn.0.head_out"{print $2}' "$entry")" = 4 ] && [ "$(awk '$1=="mlp.0.act_abs"{print $2}' "$entry")" = 512 ] &&
  ok "statistics: a value per head, per hidden channel" || bad "statistic sizes"
cp "$entry" "$T/first.txt"
sample blocks2 ref --prune-blocks 1 && grep -q "from the cache" "$T/blocks2.err" && ! grep -q "running" "$T/blocks2.err" &&
  [ "$(entries)" = 1 ] && same blocks blocks2 0 && ok "second run: the cache hit, the same samples" ||
  bad "second run did not hit the cache: $(cat "$T/blocks2.err")"
DITC_CACHE_DIR="$T/cache2" sample fresh ref --prune-blocks 1 && cmp -s "$T/first.txt" "$T/cache2/calib/$(basename "$entry")" &&
  ok "measured again in a fresh cache: the same statistics, byte for byte" || bad "calibration is not deterministic"
# another setting, another entry
sample n3 ref --prune-blocks 1 --calibrate 3 && [ "$(entries)" = 2 ] && ok "--calibrate 3: an entry of its own" ||
  bad "--calibrate 3 did not make a second entry ($(entries))"

# a corrupt entry: removed with a warning, measured again
sed -i 's/^block.1.delta 1 /block.1.delta 1 9/' "$entry"
sample corrupt ref --prune-blocks 1 && grep -q "is corrupt: removed, will recompute" "$T/corrupt.err" &&
  grep -q "running" "$T/corrupt.err" && cmp -s "$T/first.txt" "$entry" && same blocks corrupt 0 &&
  ok "a corrupt entry is removed and measured again" || bad "corrupt entry: $(cat "$T/corrupt.err")"
printf 'garbage' >"$entry"
sample garbage ref --prune-blocks 1 && grep -q "is corrupt" "$T/garbage.err" && cmp -s "$T/first.txt" "$entry" &&
  ok "a truncated entry too" || bad "garbage entry: $(cat "$T/garbage.err")"

# ---- prune-blocks: the smallest delta goes, recorded as select --------------------------------
low=$(awk '$1 ~ /^block\.[0-9]+\.delta$/ {split($1, p, "."); if (min == "" || $3 < min) {min = $3; i = p[2]}} END {print i}' "$entry")
sample spelled ref --passes "$(pipe "prune-blocks:count=1:select=$low")" && same blocks spelled 0 &&
  ok "--prune-blocks 1 drops block $low, the smallest delta (= select=$low)" || bad "prune-blocks did not drop block $low"
other=$(( (low + 1) % 4 ))
sample other ref --passes "$(pipe "prune-blocks:count=1:select=$other")" && ! same blocks other 0 &&
  ok "dropping block $other instead gives other samples" || bad "select=$other gives the same samples"
sample blocks_emu emu --prune-blocks 1 && same blocks_emu blocks 1e-4 && ok "--prune-blocks 1 on emu matches ref" ||
  bad "--prune-blocks 1: emu differs from ref"
base=$("$DITC" stats DiT-digits --json) && got=$("$DITC" stats DiT-digits --prune-blocks 1 --json) &&
  gone=$(( $(jq .params <<<"$base") - $(jq .params <<<"$got") )) &&
  [ "$gone" = $(( (128 * 384 + 384) + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128) + (128 * 768 + 768) )) ] &&
  ok "stats --prune-blocks 1: one block's parameters fewer ($gone)" || bad "stats --prune-blocks 1: $gone parameters fewer"

# ---- criterion=calib (the statistics at cse's place: the entry prune-blocks measured) --------------------------------------------------------------------------
for p in "prune-heads:keep=3" "prune-mlp:fraction=0.25"; do
  n=${p%%:*}
  sample "$n-l2" ref --passes "$(pipe "$p")" && sample "$n-calib" ref --passes "$(pipe "$p:criterion=calib")" &&
    grep -q "calibration: " "$T/$n-calib.err" || { bad "$p:criterion=calib: $(cat "$T/$n-calib.err")"; continue; }
  ! same "$n-l2" "$n-calib" 0 && ok "$p: criterion=calib decides otherwise than l2" || bad "$p: calib = l2"
  sample "$n-emu" emu --passes "$(pipe "$p:criterion=calib")" && same "$n-emu" "$n-calib" 1e-4 &&
    ok "$p:criterion=calib on emu matches ref" || bad "$p:criterion=calib: emu differs from ref"
done

# ---- bad input ------------------------------------------------------------------------------
refuse() { # EXPECTED ARGS...: non-zero exit, the message, no output
  local want=$1
  shift
  rm -f "$T/out.safetensors"
  if "$DITC" "$@" >"$T/out.txt" 2>"$T/err.txt"; then bad "accepted: $*"; return; fi
  grep -qF -- "$want" "$T/err.txt" || { bad "$*: said $(cat "$T/err.txt"), not '$want'"; return; }
  [ -e "$T/out.safetensors" ] && { bad "$*: left an output file"; return; }
  ok "refused $*: $want"
}
S=(sample DiT-digits --weights "$W" --sampler ddpm --steps 3 --cfg-scale 1.5 --labels 0-3 --backend ref --output "$T/out.safetensors")
refuse "--calibrate takes a whole number in 1..100000, got '0'" "${S[@]}" --prune-blocks 1 --calibrate 0
refuse "--calibrate takes a whole number in 1..100000, got '-1'" "${S[@]}" --prune-blocks 1 --calibrate -1
refuse "criterion=calib needs calibration data, which a command given --weights measures" \
  stats DiT-digits --passes "$(pipe "prune-mlp:fraction=0.25:criterion=calib")"
refuse "criterion=calib needs calibration data" ir DiT-digits --passes "$(pipe "prune-heads:keep=2:criterion=calib")"
refuse "and a later pass (prune-heads) reads statistics of the blocks as they were" "${S[@]}" --prune-blocks 1 \
  --passes "$(pipe "prune-heads:keep=2:criterion=calib")"
exit $fail
