#!/usr/bin/env bash
# The VAE decoder's cost (models/vae.dit, sd-vae-ft-ema, decode at batch 1, latent 32x32x4): parameters
# and MACs from the cost model (`ditc stats`), launches, peak activation memory, activation bytes moved
# and the roofline's predicted GPU time from the bf16 plan (`ditc compile --report --json`, tuning row
# sm_90).  No GPU is needed (NVRTC is).  With BASELINE_BUILD_DIR (a build of an earlier commit, e.g. main
# before a change) its plan's numbers are given beside these as "before".
#   usage: benchmarks/vae_cost.sh [BUILD_DIR] [BASELINE_BUILD_DIR]   -> benchmarks/results/vae-decoder-cost-DATE.md
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
base=${2:-}
date=$(date -u +%Y-%m-%d)
out=$root/benchmarks/results/vae-decoder-cost-$date.md
commit=$(git -C "$root" rev-parse --short HEAD)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DITC_CACHE_DIR=${DITC_CACHE_DIR:-$tmp/cache}

plan() {  # DITC OUT.json
  "$1" compile sd-vae-ft-ema --arch sm_90 --precision bf16 --entry decode -o "$tmp/sdvae.ditpack" --report --json \
    >"$2" 2>/dev/null
}
plan "$build/ditc" "$tmp/after.json"
"$build/ditc" stats sd-vae-ft-ema --json >"$tmp/stats.json"
[ -z "$base" ] || plan "$base/ditc" "$tmp/before.json"

mib() { jq -r "$1 / 1048576 * 10 | round / 10" "$2"; }
row() {  # LABEL JQ-EXPR [mib]
  local a b
  if [ "${3:-}" = mib ]; then a=$(mib "$2" "$tmp/after.json"); else a=$(jq -r "$2" "$tmp/after.json"); fi
  if [ -n "$base" ]; then
    if [ "${3:-}" = mib ]; then b=$(mib "$2" "$tmp/before.json"); else b=$(jq -r "$2" "$tmp/before.json"); fi
    echo "| $1 | $b | $a |"
  else
    echo "| $1 | $a |"
  fi
}
launches='.plans[0] | "\(.kernels_per_forward): \(.kernel_launches) kernels, \(.gemm_steps) GEMMs"'
{
  echo "# The VAE decoder's cost (models/vae.dit, sd-vae-ft-ema), $date"
  echo
  echo "\`decode(z)\` of the Stable Diffusion VAE at DiT's 256x256 images (latent 32x32x4), batch 1, from the"
  echo "cost model (\`ditc stats\`) and the plan (\`ditc compile --report\`, tuning row sm_90); commit $commit."
  echo "Written by benchmarks/vae_cost.sh. No GPU was used: the GPU times are the roofline's predictions."
  echo
  echo '```'
  echo "build/ditc stats sd-vae-ft-ema"
  echo "build/ditc compile sd-vae-ft-ema --arch sm_90 --precision bf16 --entry decode -o sdvae.ditpack --report --json"
  echo '```'
  echo
  jq -r '"parameters (decoder + post_quant_conv): \(.params) (\(.params / 1e4 | round / 100) M); MACs per image: \(.gmacs) G (every 3x3 conv, the 1x1s, the mid-block attention'"'"'s QK^T and AV)."' "$tmp/stats.json"
  echo
  if [ -n "$base" ]; then
    echo "| quantity (bf16 plan) | before | now |"
    echo "|---|---|---|"
  else
    echo "| quantity (bf16 plan) | value |"
    echo "|---|---|"
  fi
  row "launches per image" "$launches"
  row "distinct kernels" ".plans[0].kernels"
  row "peak activation memory (MiB)" ".peak_activation_bytes" mib
  row "without buffer reuse (MiB)" ".unplanned_activation_bytes" mib
  row "activation bytes moved (MiB)" ".activation_bytes_moved" mib
  row "weights in the plan (MiB)" ".plans[0].weights_bytes" mib
  echo
  echo "Predicted GPU time per image (the roofline of \`compile --report\`: per step max(FLOPs / peak, bytes /"
  echo "bandwidth) with the peaks of codegen/gpus.def, summed over the launches; a lower bound, launch gaps not"
  echo "counted), bf16 plan, batch 1:"
  echo
  if [ -n "$base" ]; then
    echo "| GPU | before ms / image | ms / image | images/s | memory-bound share |"
    echo "|---|---|---|---|---|"
    jq -r --slurpfile b "$tmp/before.json" '.plans[0].predicted[] as $p |
      ($b[0].plans[0].predicted[] | select(.gpu == $p.gpu) | .per_image_ms) as $old |
      "| \($p.name) (\($p.arch)) | \($old * 100 | round / 100) | \($p.per_image_ms * 100 | round / 100) | \($p.images_per_s * 10 | round / 10) | \($p.memory_bound_fraction * 100 | round) % |"' \
      "$tmp/after.json"
  else
    echo "| GPU | ms / image | images/s | memory-bound share |"
    echo "|---|---|---|---|"
    jq -r '.plans[0].predicted[] | "| \(.name) (\(.arch)) | \(.per_image_ms * 100 | round / 100) | \(.images_per_s * 10 | round / 10) | \(.memory_bound_fraction * 100 | round) % |"' \
      "$tmp/after.json"
  fi
  echo
  # the largest im2col: the peak's cause
  jq -r '[.plans[0].steps[] | select(.step | test("_im2col$"))] | max_by(.act_written) |
    "The largest step is \(.node)'"'"'s im2col: it writes \(.act_written / 1048576 | round) MiB of columns."' "$tmp/after.json"
  echo
  cat <<'TXT'
How it lowers (default pipeline): every stride-1 convolution becomes an `im2col` kernel and one batched
GEMM (`conv-gemm`; a 1x1 is the GEMM alone), its bias an add fused with what follows. The nearest 2x
upsample in front of each up block's conv is folded into that conv's im2col (`im2col {up=2}` reads the
pre-upsample tensor at index / 2): neither the copies nor the upsampled tensor exist. Each group norm
(a layernorm over `[N, groups, C/groups*H*W]` rows reshaped back, the per-channel affine and the SiLU
after it) is one `group_norm` kernel: mean and centred variance per (image, group), the normalise,
affine and SiLU on the store; the mid-block attention's group norm (no SiLU) too. The mid block's
attention (one head of 512 channels) exceeds the fused attention kernel's head limit (128) and runs as
GEMMs and a softmax kernel (in vae-tiny, 64 channels, it is the fused kernel).

The im2col columns still dominate the activation traffic and the peak (the last up block's first conv,
256 -> 128 channels at 256x256, unfolds 2304 x 65536 values): an implicit GEMM that gathers the 3x3
window in its loads is the decoder's next optimisation. The group_norm kernel runs one warp per
(image, group) as the layernorm kernel did (32 rows an image): the roofline counts its bytes, not its
occupancy.

Correctness: the shared `vae-tiny` case matches diffusers' AutoencoderKL on `ref`, `emu` and the
simulated CUDA driver at fp32 (tolerance 1e-4), with both attention namings (tests/reference/vae_tiny.sh,
emu_vae_tiny.sh, cuda_sim_pass_cases.sh); tests/cli/vae_fusion.sh checks the plan's fusions.
TXT
} >"$out"
echo "wrote $out"
