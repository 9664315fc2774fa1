#!/usr/bin/env bash
# The seed study's table, measured with ditc: for DiT-XS/4, XS/2, S/4, S/2, B/2 and XL/2 the
# parameters, model size, GMACs, kernel launches and planned peak activation memory of the compiled
# plan (no GPU needed), and, when a GPU is present, latency at batch 1, images per second at batch
# 32 for fp32/fp16/bf16 (ditc bench --backend cuda) beside PyTorch eager and torch.compile running
# the same weights (benchmarks/torch_dit.py, when python3 has torch).
#
#   usage: benchmarks/table.sh [BUILD_DIR] [OUT_PREFIX]
#   writes OUT_PREFIX.md and OUT_PREFIX.csv (default benchmarks/results/table-<device>-<date>)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ditc=$build/ditc
models=${DITC_TABLE_MODELS:-DiT-XS/4 DiT-XS/2 DiT-S/4 DiT-S/2 DiT-B/2 DiT-XL/2}
arch=${DITC_TABLE_ARCH:-sm_90}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DITC_CACHE_DIR=${DITC_CACHE_DIR:-$tmp/cache}

gpu=0
device="cpu-$(uname -m)"
if "$ditc" bench DiT-XS/4 --backend cuda --iters 1 --report >"$tmp/probe" 2>"$tmp/why"; then
  gpu=1
  device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' || echo gpu)
fi
date=$(date -u +%Y-%m-%d)
out=${2:-$root/benchmarks/results/table-$device-$date}
mkdir -p "$(dirname "$out")"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

header="model,params_M,size_f32_MiB,size_bf16_MiB,GMACs,kernels_per_forward,kernels_per_block,peak_act_bs1_MiB,peak_act_bs32_MiB"
[ $gpu = 1 ] && header="$header,ditc_bf16_bs1_ms,ditc_fp16_bs1_ms,ditc_fp32_bs1_ms,ditc_bf16_bs32_img_s,torch_eager_bf16_bs1_ms,torch_compile_bf16_bs32_img_s"
echo "$header" >"$tmp/table.csv"

for m in $models; do
  stats=$("$ditc" stats "$m" --json)
  params=$(jq -r .params <<<"$stats")
  gmacs=$(jq -r '.macs / 1e9' <<<"$stats")
  rep1=$("$ditc" compile "$m" --arch "$arch" --batch 1 --entry forward --report --json -o "$tmp/p.ditpack" 2>/dev/null)
  rep32=$("$ditc" compile "$m" --arch "$arch" --batch 32 --entry forward --report --json -o "$tmp/p.ditpack" 2>/dev/null)
  row="$m,$(awk -v p="$params" 'BEGIN{printf "%.2f", p/1e6}'),$(mib $((params * 4))),$(mib $((params * 2))),$(printf '%.3f' "$gmacs")"
  row="$row,$(jq -r .kernels_per_forward <<<"$rep1"),$(jq -r .kernels_per_block <<<"$rep1")"
  row="$row,$(mib "$(jq -r .peak_activation_bytes <<<"$rep1")"),$(mib "$(jq -r .peak_activation_bytes <<<"$rep32")")"
  if [ $gpu = 1 ]; then
    ms() { "$ditc" bench "$m" --backend cuda --precision "$1" --batch "$2" --iters 50 --warmup 10 --report | jq -r "$3"; }
    row="$row,$(ms bf16 1 .median_ms),$(ms f16 1 .median_ms),$(ms f32 1 .median_ms),$(ms bf16 32 .images_per_s)"
    if python3 -c "import torch" 2>/dev/null; then
      tj=$(python3 "$root/benchmarks/torch_dit.py" bench --model "$m" --batch 1,32 --dtype bf16 --mode eager,compile \
             --weights random --device cuda --warmup 10 --iters 50 2>/dev/null || echo '[]')
      eager=$(jq -r '[.[] | select(.mode=="eager" and .batch==1)][0].median_ms // "n/a"' <<<"$tj")
      comp=$(jq -r '[.[] | select(.mode=="compile" and .batch==32)][0].images_per_s // "n/a"' <<<"$tj")
      row="$row,$eager,$comp"
    else
      row="$row,n/a,n/a"
    fi
  fi
  echo "$row" >>"$tmp/table.csv"
  echo "$row" >&2
done

{
  echo "# ditc: the seed study's table"
  echo
  echo "Command: \`benchmarks/table.sh\`  "
  echo "Commit: $(git -C "$root" rev-parse --short HEAD)  "
  echo "Date: $date  "
  echo "Device: $device$([ $gpu = 1 ] || echo " (no GPU: the timing columns need one; $(head -1 "$tmp/why"))")  "
  echo "Plans: default passes, fp32, compiled for $arch; peak activation memory is the plan's arena."
  echo
  head -1 "$tmp/table.csv" | sed 's/^/| /; s/$/ |/; s/,/ | /g'
  head -1 "$tmp/table.csv" | sed 's/[^,]*/---/g; s/^/|/; s/$/|/; s/,/|/g'
  tail -n +2 "$tmp/table.csv" | sed 's/^/| /; s/$/ |/; s/,/ | /g'
} >"$out.md"
cp "$tmp/table.csv" "$out.csv"
cat "$out.md"
