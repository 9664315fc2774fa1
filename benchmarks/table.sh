#!/usr/bin/env bash
# The seed study's table, measured with ditc: for DiT-XS/4, XS/2, S/4, S/2, B/2 and XL/2 the
# parameters, model size, GMACs, kernel launches and planned peak activation memory of the compiled
# plan (no GPU needed), and, when a GPU is present, latency at batch 1 and images per second at
# batch 32 for fp32/fp16/bf16 (ditc bench --backend cuda) with the device memory ditc holds, beside
# PyTorch eager and torch.compile running the same weights (benchmarks/torch_dit.py writes them once
# per model and both load that file; needs python3 with torch), and the ratios: batch-1 speed-up
# over eager, batch-32 throughput over torch.compile, per precision.  The quantised rows (issue 11:
# QUANT_MODES, default "w8 w8:all w8a8 fp8", MODE:SCOPE) follow for every model: weight bytes against
# the f32 model's, kernels per block, peak activation memory, the roofline's prediction and, with a
# GPU, their time beside ditc bf16 (quantised plans keep bf16 for what is not quantised; fp8 needs
# sm_89 or later, so it is compiled for DITC_TABLE_ARCH when that is, else sm_90; its activation
# scales are calibrated on CALIBRATE samples of random weights, default 8).
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

header="model,params_M,size_f32_MiB,size_bf16_MiB,GMACs,kernels_per_forward,kernels_per_block,kernels_per_block_none"
header="$header,peak_act_bs1_MiB,peak_act_bs32_MiB,peak_act_bs32_none_MiB"
# the roofline's prediction (compile --report, codegen/gpus.def): bf16 plans, a lower bound on time
header="$header,predicted_H100_bf16_bs1_ms,predicted_A100_bf16_bs32_img_s,predicted_L40S_bf16_bs32_img_s"
header="$header,predicted_H100_bf16_bs32_img_s,predicted_H200_bf16_bs32_img_s"
if [ $gpu = 1 ]; then
  for d in bf16 fp16 fp32; do
    header="$header,ditc_${d}_bs1_ms,eager_${d}_bs1_ms,speedup_${d}_bs1_vs_eager"
    header="$header,ditc_${d}_bs32_img_s,compile_${d}_bs32_img_s,ratio_${d}_bs32_vs_compile"
  done
  header="$header,ditc_bf16_bs32_device_MiB,torch_compile_bf16_bs32_peak_MiB"
fi
echo "$header" >"$tmp/table.csv"
read -r -a qmodes <<<"${QUANT_MODES-w8 w8:all w8a8 fp8}"
qheader="model,quantize,scope,weights_MiB,vs_f32,kernels_per_block,peak_act_bs32_MiB"
qheader="$qheader,predicted_H100_bs1_ms,predicted_H100_bs32_img_s"
[ $gpu = 1 ] && qheader="$qheader,ditc_bs1_ms,ditc_bs32_img_s,ratio_bs32_vs_ditc_bf16"
echo "$qheader" >"$tmp/quant.csv"

for m in $models; do
  stats=$("$ditc" stats "$m" --json)
  params=$(jq -r .params <<<"$stats")
  gmacs=$(jq -r '.macs / 1e9' <<<"$stats")
  rep1=$("$ditc" compile "$m" --arch "$arch" --batch 1 --entry forward --report --json -o "$tmp/p.ditpack" 2>/dev/null)
  rep32=$("$ditc" compile "$m" --arch "$arch" --batch 32 --entry forward --report --json -o "$tmp/p.ditpack" 2>/dev/null)
  none32=$("$ditc" compile "$m" --arch "$arch" --batch 32 --entry forward --passes none --report --json \
             -o "$tmp/p.ditpack" 2>/dev/null)
  row="$m,$(awk -v p="$params" 'BEGIN{printf "%.2f", p/1e6}'),$(mib $((params * 4))),$(mib $((params * 2))),$(printf '%.3f' "$gmacs")"
  row="$row,$(jq -r .kernels_per_forward <<<"$rep1"),$(jq -r .kernels_per_block <<<"$rep1"),$(jq -r .kernels_per_block <<<"$none32")"
  row="$row,$(mib "$(jq -r .peak_activation_bytes <<<"$rep1")"),$(mib "$(jq -r .peak_activation_bytes <<<"$rep32")")"
  row="$row,$(mib "$(jq -r .peak_activation_bytes <<<"$none32")")"
  bf1=$("$ditc" compile "$m" --arch "$arch" --batch 1 --entry forward --precision bf16 --report --json \
          -o "$tmp/p.ditpack" 2>/dev/null)
  bf32=$("$ditc" compile "$m" --arch "$arch" --batch 32 --entry forward --precision bf16 --report --json \
           -o "$tmp/p.ditpack" 2>/dev/null)
  pred() { jq -r --arg g "$2" --arg f "$3" '.plans[0].predicted[] | select(.gpu == $g) | .[$f]' <<<"$1"; }
  row="$row,$(printf '%.4f' "$(pred "$bf1" H100 forward_ms)")"
  for g in A100 L40S H100 H200; do row="$row,$(printf '%.0f' "$(pred "$bf32" $g images_per_s)")"; done
  if [ $gpu = 1 ]; then
    # one set of random weights for both: ditc reads the safetensors PyTorch writes
    w=$tmp/weights.safetensors
    tj='[]'
    if python3 -c "import torch" 2>/dev/null &&
       python3 "$root/benchmarks/torch_dit.py" random-weights --model "$m" --out "$w" >/dev/null 2>&1; then
      tj=$(python3 "$root/benchmarks/torch_dit.py" bench --model "$m" --batch 1,32 --dtype bf16,fp16,fp32 \
             --mode eager,compile --weights "$w" --device cuda --warmup 10 --iters 50 2>/dev/null || echo '[]')
    else
      w=random
    fi
    torch_val() { # MODE DTYPE BATCH FIELD
      jq -r --arg m "$1" --arg d "$2" --argjson b "$3" \
        "[.[] | select(.mode==\$m and .dtype==\$d and .batch==\$b)][0].$4 // \"n/a\"" <<<"$tj"
    }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
    for d in bf16 fp16 fp32; do
      p=$d; [ $d = fp16 ] && p=f16; [ $d = fp32 ] && p=f32
      b1=$("$ditc" bench "$m" --backend cuda --weights "$w" --precision $p --batch 1 --iters 50 --warmup 10 --report)
      b32=$("$ditc" bench "$m" --backend cuda --weights "$w" --precision $p --batch 32 --iters 20 --warmup 5 --report)
      ms=$(jq -r .median_ms <<<"$b1") ips=$(jq -r .images_per_s <<<"$b32")
      eager=$(torch_val eager $d 1 median_ms) comp=$(torch_val compile $d 32 images_per_s)
      row="$row,$ms,$eager,$(ratio "$eager" "$ms"),$ips,$comp,$(ratio "$ips" "$comp")"
      [ $d = bf16 ] && dev_mib=$(mib "$(jq -r '.device_bytes // 0' <<<"$b32")")
    done
    peak=$(torch_val compile bf16 32 peak_mem_bytes)
    row="$row,$dev_mib,$([ "$peak" = n/a ] && echo n/a || mib "$peak")"
  fi
  echo "$row" >>"$tmp/table.csv"
  echo "$row" >&2
  for q in ${qmodes[@]+"${qmodes[@]}"}; do
    mode=${q%%:*} scope=blocks qarch=$arch
    [ "$q" != "${q#*:}" ] && scope=${q#*:}
    qf=(--quantize "$mode" --quantize-scope "$scope" --precision bf16)
    # fp8's activation scales come from calibration: CALIBRATE samples (default 8) of random weights
    [ "$mode" = fp8 ] && qf+=(--weights random --calibrate "${CALIBRATE:-8}")
    [ "$mode" = fp8 ] && [ "${arch#sm_}" -lt 89 ] && qarch=sm_90
    q1=$("$ditc" compile "$m" --arch "$qarch" --batch 1 --entry forward "${qf[@]}" --report --json -o "$tmp/p.ditpack" 2>/dev/null)
    q32=$("$ditc" compile "$m" --arch "$qarch" --batch 32 --entry forward "${qf[@]}" --report --json -o "$tmp/p.ditpack" 2>/dev/null)
    wb=$(jq -r '.plans[0].weights_bytes' <<<"$q32")
    qrow="$m,$mode,$scope,$(mib "$wb"),$(awk -v a="$wb" -v b=$((params * 4)) 'BEGIN { printf "%.1f%%", 100 * a / b }')"
    qrow="$qrow,$(jq -r .kernels_per_block <<<"$q32"),$(mib "$(jq -r .peak_activation_bytes <<<"$q32")")"
    qrow="$qrow,$(printf '%.4f' "$(pred "$q1" H100 forward_ms)"),$(printf '%.0f' "$(pred "$q32" H100 images_per_s)")"
    if [ $gpu = 1 ]; then
      b1=$("$ditc" bench "$m" --backend cuda --weights "$w" "${qf[@]}" --batch 1 --iters 50 --warmup 10 --report)
      b32=$("$ditc" bench "$m" --backend cuda --weights "$w" "${qf[@]}" --batch 32 --iters 20 --warmup 5 --report)
      qips=$(jq -r .images_per_s <<<"$b32")
      bf16ips=$(awk -F, -v m="$m" -v h="$header" 'BEGIN { n = split(h, c, ","); for (i = 1; i <= n; i++) if (c[i] == "ditc_bf16_bs32_img_s") k = i }
                 $1 == m { print $k }' "$tmp/table.csv")
      qrow="$qrow,$(jq -r .median_ms <<<"$b1"),$qips,$(ratio "$qips" "$bf16ips")"
    fi
    echo "$qrow" >>"$tmp/quant.csv"
    echo "$qrow" >&2
  done
done

{
  echo "# ditc: the seed study's table"
  echo
  echo "Command: \`benchmarks/table.sh\`  "
  echo "Commit: $(git -C "$root" rev-parse --short HEAD)  "
  echo "Date: $date  "
  echo "Device: $device$([ $gpu = 1 ] || echo " (no GPU: the timing columns need one; $(head -1 "$tmp/why"))")  "
  echo 'Plans: default passes (`_none`: `--passes none`, one kernel per node and no buffer reuse), fp32,'
  echo "compiled for $arch; peak activation memory is the plan's arena. \`predicted_*\`: the roofline of"
  echo "\`ditc compile --report\` for bf16 plans (per step max(FLOPs / peak, bytes / bandwidth) with the peaks of"
  echo "codegen/gpus.def), *predicted*, a lower bound on time: not a measurement."
  echo
  head -1 "$tmp/table.csv" | sed 's/^/| /; s/$/ |/; s/,/ | /g'
  head -1 "$tmp/table.csv" | sed 's/[^,]*/---/g; s/^/|/; s/$/|/; s/,/|/g'
  tail -n +2 "$tmp/table.csv" | sed 's/^/| /; s/$/ |/; s/,/ | /g'
  if [ ${#qmodes[@]} -gt 0 ]; then
    echo
    echo "## Quantised plans (\`--quantize MODE --quantize-scope SCOPE --precision bf16\`)"
    echo
    echo "weights_MiB: the plan's weights (int8 or e4m3 levels, their scales, what stays bf16); vs_f32: against"
    echo "size_f32_MiB above.  ratio_bs32_vs_ditc_bf16: images/s at batch 32 over ditc_bf16_bs32_img_s (the"
    echo "issue's goal for w8a8 and fp8 at DiT-XL/2: at least 1.4)."
    echo
    head -1 "$tmp/quant.csv" | sed 's/^/| /; s/$/ |/; s/,/ | /g'
    head -1 "$tmp/quant.csv" | sed 's/[^,]*/---/g; s/^/|/; s/$/|/; s/,/|/g'
    tail -n +2 "$tmp/quant.csv" | sed 's/^/| /; s/$/ |/; s/,/ | /g'
  fi
} >"$out.md"
cp "$tmp/table.csv" "$out.csv"
cp "$tmp/quant.csv" "$out-quantized.csv"
cat "$out.md"
