#!/usr/bin/env bash
# The main job: build ditc and sample a 10x10 grid of handwritten digits with the trained
# DiT-digits model (DDPM, 50 steps, guidance 1.5; column j = digit j) into digits.png
# (or the path given as the first argument).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-digits.png}
bash "$root/.ci/install-deps"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=gcc >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target ditc
"$root/build/ditc" sample DiT-digits --weights "$root/models/digits/dit-digits.safetensors" \
  --sampler ddpm --steps 50 --cfg-scale 1.5 --labels 0-9 --repeat 10 --seed 0 --output "$out"
echo "wrote $out"
