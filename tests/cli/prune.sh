#!/usr/bin/env bash
# The passes that remove work (issue 10): `ditc stats --prune-heads K` falls by exactly what the
# removed heads cost (computed here from the configuration), the flags build what --passes spelled
# out builds, a pack of a pruned model is smaller and runs as the model does, and bad values are
# refused naming the flag and the model's value, with no output file.
source "$(dirname "$0")/common.bash"
REF=${DITC_SHARED:-$DITC_SRC/../shared}/reference

ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
field() { jq -r ".$1" <<<"$2"; }

# ---- stats: what the removed heads cost --------------------------------------------------------
for spec in "DiT-S/2 6 384 12 16" "DiT-XS/4 4 256 6 8" "DiT-B/2 12 768 12 16"; do
  read -r model H D depth grid <<<"$spec"
  N=$((grid * grid)) hd=$((D / H))
  base=$("$DITC" stats "$model" --json)
  for K in 1 $((H / 2)) $((H - 1)); do
    got=$("$DITC" stats "$model" --prune-heads "$K" --json)
    gone=$(((H - K) * depth))
    # per head: q, k, v rows and biases of qkv, proj's columns; MACs of qkv, QK^T, AV and proj
    want_params=$(($(field params "$base") - gone * (3 * hd * D + 3 * hd + D * hd)))
    want_macs=$(($(field macs "$base") - gone * (N * D * 3 * hd + 2 * N * N * hd + N * hd * D)))
    if [ "$(field params "$got")" = "$want_params" ] && [ "$(field macs "$got")" = "$want_macs" ]; then
      ok "$model --prune-heads $K: params $want_params, MACs $want_macs"
    else
      bad "$model --prune-heads $K: params $(field params "$got") (want $want_params), MACs $(field macs "$got") (want $want_macs)"
    fi
  done
done
# kv-heads: k and v rows (and biases) of the H-K heads that merge; MACs of qkv's k, v outputs
got=$("$DITC" stats DiT-S/2 --kv-heads 2 --json)
base=$("$DITC" stats DiT-S/2 --json)
want=$(($(field params "$base") - 12 * 4 * 2 * (64 * 384 + 64)))
[ "$(field params "$got")" = "$want" ] && ok "DiT-S/2 --kv-heads 2: params $want" || bad "kv-heads params $(field params "$got"), want $want"
# prune-blocks: one whole block's parameters
got=$("$DITC" stats DiT-S/2 --prune-blocks 1 --json)
want=$(($(field params "$base") - (384 * 2304 + 2304) - (384 * 1152 + 1152) - (384 * 384 + 384) - (384 * 1536 + 1536) - (1536 * 384 + 384)))
[ "$(field params "$got")" = "$want" ] && ok "DiT-S/2 --prune-blocks 1: params $want" || bad "prune-blocks params $(field params "$got"), want $want"

# ---- the flag and --passes spelled out build the same IR ---------------------------------------
S=(--set depth=2 --set hidden_size=64 --set num_heads=4 --set input_size=16 --set num_classes=10)
W=(--weights random:3)
pipe="canonicalize,fold-constants,cse,prune-heads:keep=2,hoist-adaln,route-experts,canonicalize,dce,fuse,plan-memory"
"$DITC" check DiT-S/2 "${S[@]}" "${W[@]}" --prune-heads 2 --dump-after prune-heads >"$T/flag.ir" &&
  "$DITC" check DiT-S/2 "${S[@]}" "${W[@]}" --passes "$pipe" --dump-after prune-heads >"$T/spelled.ir" &&
  cmp -s "$T/flag.ir" "$T/spelled.ir" && ok "--prune-heads 2 = --passes ...,prune-heads:keep=2,..." ||
  bad "--prune-heads and --passes spelled out differ"

# ---- a pruned pack: smaller, recorded decisions, runs as the model does -------------------------
if [ -f "$REF/dit-tiny-p2.weights.safetensors" ]; then
  TS=(--set input_size=16 --set in_channels=4 --set patch_size=2 --set hidden_size=64 --set depth=2
      --set num_heads=4 --set num_classes=10)
  TW=(--weights "$REF/dit-tiny-p2.weights.safetensors")
  "$DITC" compile models/dit.dit "${TS[@]}" "${TW[@]}" --arch sm_90 --batch 2 -o "$T/full.ditpack" >"$T/c0.log" 2>&1
  rc=$?
  if [ $rc -ne 0 ] && grep -q "NVRTC not found" "$T/c0.log"; then
    echo "(no NVRTC: the pack checks are left out)"
  elif [ $rc -ne 0 ]; then
    cat "$T/c0.log"; bad "compile"
  else
    for f in "--prune-heads 2" "--kv-heads 2" "--prune-mlp 0.5"; do
      # shellcheck disable=SC2086
      "$DITC" compile models/dit.dit "${TS[@]}" "${TW[@]}" $f --arch sm_90 --batch 2 -o "$T/p.ditpack" >/dev/null 2>&1 &&
        "$DITC" run --plan "$T/p.ditpack" --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/pack.st" &&
        "$DITC" run models/dit.dit "${TS[@]}" "${TW[@]}" $f --backend ref --input "$REF/dit-tiny-p2.case.safetensors" \
          --output "$T/ref.st" && "$DITC" compare "$T/pack.st:out" "$T/ref.st:out" --tol 1e-5 >/dev/null ||
        bad "pack $f does not run as the model does"
      [ "$(stat -c %s "$T/p.ditpack")" -lt "$(stat -c %s "$T/full.ditpack")" ] && ok "pack $f: smaller, runs as the model" ||
        bad "pack $f is not smaller"
    done
  fi
fi

# ---- bad input -----------------------------------------------------------------------------
refuse() {  # EXPECTED_MESSAGE ARGS...: exit non-zero, the message, no output file
  local want=$1
  shift
  rm -f "$T/out.st"
  if "$DITC" "$@" >"$T/out.txt" 2>"$T/err.txt"; then bad "accepted: $*"; return; fi
  if ! grep -qF -- "$want" "$T/err.txt"; then bad "$*: said $(cat "$T/err.txt"), not '$want'"; return; fi
  [ -e "$T/out.st" ] && { bad "$*: left an output file"; return; }
  ok "refused $*: $want"
}
refuse "--prune-heads 9: DiT-S/2 has 6 heads per block" stats DiT-S/2 --prune-heads 9
refuse "--prune-heads takes a whole number in 1..65536, got '0'" stats DiT-S/2 --prune-heads 0
refuse "--prune-heads takes a whole number in 1..65536, got '-2'" stats DiT-S/2 --prune-heads -2
refuse "--kv-heads 4: DiT-S/2 has 6 heads per block, not a multiple of 4" stats DiT-S/2 --kv-heads 4
refuse "--kv-heads 4: DiT-S/2 has 3 kept heads per block, not a multiple of 4" ir DiT-S/2 --prune-heads 3 --kv-heads 4
refuse "--kv-heads takes a whole number in 1..65536, got '0'" compile DiT-S/2 --kv-heads 0 --arch sm_90 -o "$T/out.st"
refuse "--prune-mlp 1: pass 'prune-mlp': option 'fraction' takes a number in 0..0.999999, got '1'" stats DiT-S/2 --prune-mlp 1
refuse "--prune-mlp -0.5: pass 'prune-mlp'" stats DiT-S/2 --prune-mlp -0.5
refuse "--prune-blocks 12: DiT-S/2 has 12 blocks (at most 11 can be dropped)" stats DiT-S/2 --prune-blocks 12
refuse "pass 'prune-heads': option 'keep' takes a whole number in 0..65536, got 'two'" stats DiT-S/2 --passes 'default,prune-heads:keep=two'
refuse "pass 'kv-heads': option 'count' takes a whole number" stats DiT-S/2 --passes 'kv-heads:count=1.5'
refuse "the model has no softmax attention whose heads could be removed" stats DiT-S/2 --set att=fgq --set num_heads=6 --prune-heads 2
refuse "--prune-heads 9: DiT-S/2 has 6 heads per block" run DiT-S/2 --weights random --prune-heads 9 \
  --input "$REF/dit-tiny-p2.case.safetensors" --output "$T/out.st"
refuse "keep=5: blocks.0.attn" stats DiT-XS/2 --passes 'cse,prune-heads:keep=5'
exit $fail
