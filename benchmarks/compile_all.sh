#!/usr/bin/env bash
# `ditc compile` for every configuration `ditc models` lists, for four GPU architectures, on a machine
# without a GPU (NVRTC only), from a fresh kernel cache; then a second compile of one of them, which
# must be all cache hits.  Writes a Markdown table with the time each took.
#
# Then DiT-XL/2 at bf16 (tensor-core attention) on its own: cold (fresh cache) and warm, with the
# distinct kernels per plan and the CUBIN bytes per architecture (`compile --report --json`).
#
#   usage: benchmarks/compile_all.sh [BUILD_DIR] [OUT.md]
#   default OUT: benchmarks/results/compile-all-models-<date>.md
#   COMPILE_MODELS="DiT-S/2 DiT-XL/2": only these configurations (default: every one `ditc models` lists)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ditc=${1:-$root/build}/ditc
archs=${DITC_ARCHS:-sm_80,sm_86,sm_89,sm_90}
date=$(date -u +%Y-%m-%d)
out=${2:-$root/benchmarks/results/compile-all-models-$date.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DITC_CACHE_DIR=$tmp/cache

rows=$tmp/rows
: >"$rows"
fails=0
while read -r model _; do
  t0=$EPOCHREALTIME
  if "$ditc" compile "$model" --arch "$archs" --entry all -o "$tmp/p.ditpack" --report --json >"$tmp/rep.json" \
       2>"$tmp/err"; then
    t1=$EPOCHREALTIME
    plans=$(jq '.plans | length' "$tmp/rep.json")
    kpb=$(jq '[.plans[].kernels_per_block] | max' "$tmp/rep.json")
    nk=$(jq '[.plans[].kernels] | max' "$tmp/rep.json")
    printf '| %s | ok | %d | %s | %s | %.0f |\n' "$model" "$plans" "$kpb" "$nk" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" >>"$rows"
  else
    fails=$((fails + 1))
    printf '| %s | **failed**: %s | | | | |\n' "$model" "$(head -1 "$tmp/err" | tr '|' '/')" >>"$rows"
  fi
  tail -1 "$rows" >&2
done < <(if [ -n "${COMPILE_MODELS:-}" ]; then printf '%s\n' $COMPILE_MODELS; else "$ditc" models; fi)

t0=$EPOCHREALTIME
"$ditc" compile DiT-S/2 --arch "$archs" --entry all -o "$tmp/p.ditpack" >"$tmp/again"
again=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')

# DiT-XL/2, bf16: cold, then warm
rm -rf "$DITC_CACHE_DIR"
t0=$EPOCHREALTIME
"$ditc" compile DiT-XL/2 --precision bf16 --arch "$archs" --entry all -o "$tmp/xl.ditpack" --report --json \
  >"$tmp/xl.json" 2>"$tmp/xl.err" || { cat "$tmp/xl.err" >&2; exit 1; }
xl_cold=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
t0=$EPOCHREALTIME
"$ditc" compile DiT-XL/2 --precision bf16 --arch "$archs" --entry all -o "$tmp/xl.ditpack" >"$tmp/xl.again" 2>&1
xl_warm=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')

{
  echo "# ditc compile for every model in models/, no GPU"
  echo
  echo "Command (per configuration \`ditc models\` lists):  "
  echo "\`ditc compile MODEL --arch $archs --entry all -o MODEL.ditpack\` (fp32, batch 1, default passes, fresh kernel cache)  "
  echo "Script: \`benchmarks/compile_all.sh\`  "
  echo "Commit: $(git -C "$root" rev-parse --short HEAD)  "
  echo "Date: $date  "
  echo "Host: $(uname -m), $(nproc) cores, no GPU; $("$ditc" compile DiT-XS/4 --arch sm_90 --entry forward -o "$tmp/v.ditpack" --report --json 2>/dev/null | jq -r .nvrtc.version)"
  echo
  echo "Plans: one per distinct tuning row of the architectures (entries forward and forward_with_cfg counted apart)."
  echo
  echo "| model | result | plans | launches per block (most) | distinct kernels (most per plan) | seconds |"
  echo "|---|---|---|---|---|---|"
  cat "$rows"
  echo
  echo "DiT-XL/2, bf16 (tensor-core attention), \`--arch $archs --entry all\`: cold ${xl_cold} s (fresh cache),"
  echo "warm ${xl_warm} s (\`$(grep nvrtc "$tmp/xl.again")\`); distinct kernels per plan:"
  echo "$(jq -r '[.plans[] | "\(.entry)/\(.tuning) \(.kernels)"] | join(", ")' "$tmp/xl.json")."
  echo
  echo "| plan | architecture | CUBIN bytes |"
  echo "|---|---|---|"
  jq -r '.plans[] | . as $p | .archs | to_entries[] | "| \($p.entry)/\($p.tuning) | \(.key) | \(.value.cubin_bytes) |"' "$tmp/xl.json"
  echo
  echo "Second compile of DiT-S/2 (same cache): \`$(grep nvrtc "$tmp/again")\`, ${again} s."
} >"$out"
cat "$out"
[ "$fails" = 0 ]
