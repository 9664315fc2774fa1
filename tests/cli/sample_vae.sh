#!/usr/bin/env bash
# `ditc sample --vae CONFIG --vae-weights W`: a latent model's samples decoded to images on the sampler's
# backend.  A tiny latent DiT (the shared dit-tiny-p2: in_channels 4) and the shared vae-tiny decoder: on ref
# and emu, `samples` of the safetensors output equal `run vae-tiny --entry decode` on its `z` (the latents),
# and the .npz's arr_0 (uint8 [N, 32, 32, 3]) equals the uint8 of the decode of the latents the run sampled
# (DITC_TEST_LATENTS keeps them).  Refused before sampling, with no output file: a VAE of other latent
# channels, VAE weights that do not fit (every mismatch listed), --vae without --vae-weights, and a PNG of
# the latent model without --vae (the message says how to get images).
source "$(dirname "$0")/common.bash"
PY=/usr/bin/python3
$PY -c 'import numpy' 2>/dev/null || { echo "SKIPPED: python3 has no numpy (.ci/install-deps installs python3-numpy)"; exit 77; }
REF=${DITC_SHARED:?}/reference
[ -d "$REF" ] || { echo "SKIPPED: the shared reference folder $REF is not there"; exit 77; }
VW=$REF/vae-tiny.weights.safetensors
DIT=(models/dit.dit --set input_size=16 --set in_channels=4 --set patch_size=2 --set hidden_size=64 --set depth=2
     --set num_heads=4 --set num_classes=10 --weights "$REF/dit-tiny-p2.weights.safetensors")
A=(sample "${DIT[@]}" --sampler ddim --steps 3 --cfg-scale 1.5 --seed 5)
V=(--vae vae-tiny --vae-weights "$VW")
for b in ref emu; do
  "$DITC" "${A[@]}" --backend $b "${V[@]}" --labels 0,7 --output "$T/$b.safetensors" 2>"$T/log" ||
    { cat "$T/log"; fail=1; continue; }
  "$DITC" run vae-tiny --set latent_size=16 --entry decode --weights "$VW" --backend $b \
    --input "$T/$b.safetensors" --output "$T/$b.dec.safetensors" 2>/dev/null || { echo "FAIL: $b decode"; fail=1; }
  "$DITC" compare "$T/$b.safetensors:samples" "$T/$b.dec.safetensors:out" --tol 1e-6 ||
    { echo "FAIL: $b: sample --vae differs from decoding its latents"; fail=1; }
  # the .npz: arr_0 from the decoded images, [N, H, W, 3]
  DITC_TEST_LATENTS=$T/$b.lat.safetensors "$DITC" "${A[@]}" --backend $b "${V[@]}" --num-samples 3 --batch 3 \
    --output "$T/$b.npz" 2>"$T/log" || { cat "$T/log"; fail=1; continue; }
  "$DITC" run vae-tiny --set latent_size=16 --entry decode --weights "$VW" --backend $b \
    --input "$T/$b.lat.safetensors" --output "$T/$b.lat.dec.safetensors" 2>/dev/null || { echo "FAIL: $b decode"; fail=1; }
  $PY - "$T/$b.npz" "$T/$b.lat.dec.safetensors" <<'PY' || { echo "FAIL: $b: the .npz is not the decoded latents"; fail=1; }
import json, struct, sys, numpy as np
a = np.load(sys.argv[1])["arr_0"]
with open(sys.argv[2], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
    data = f.read()
m = h["out"]
o = np.frombuffer(data[m["data_offsets"][0]:m["data_offsets"][1]], np.float32).reshape(m["shape"])
u = np.clip(127.5 * o + 128, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
assert a.shape == (3, 32, 32, 3) and a.dtype == np.uint8, (a.shape, a.dtype)
assert (a == u).all(), np.abs(a.astype(int) - u).max()
PY
done
# a PNG grid of the decoded images
"$DITC" "${A[@]}" --backend ref "${V[@]}" --labels 0,7 --output "$T/grid.png" 2>/dev/null &&
  [ "$(head -c 4 "$T/grid.png" | tail -c 3)" = PNG ] || { echo "FAIL: no PNG with --vae"; fail=1; }

# refusals: a clear error, non-zero exit, no output file, before any sampling
bad() {  # WHAT PATTERN OUTPUT ARGS...
  local what=$1 pat=$2 outp=$3
  shift 3
  if "$DITC" "${A[@]}" --backend ref "$@" --output "$outp" 2>"$T/err"; then echo "FAIL $what: accepted"; fail=1; fi
  grep -q "^ditc: error: " "$T/err" || { echo "FAIL $what: no 'ditc: error:'"; cat "$T/err"; fail=1; }
  grep -Eq -- "$pat" "$T/err" || { echo "FAIL $what: the message does not match /$pat/"; cat "$T/err"; fail=1; }
  ! grep -q "images/s" "$T/err" || { echo "FAIL $what: it sampled first"; fail=1; }
  [ ! -e "$outp" ] || { echo "FAIL $what: $outp was written"; fail=1; }
}
bad "latent PNG without --vae" "latents \(in_channels 4\).*--vae sd-vae-ft-ema --vae-weights" "$T/z.png" --labels 0
sed 's/latent_channels: int = 4/latent_channels: int = 8/' models/vae.dit >"$T/vae8.dit"
bad "latent channels" "decodes latents of 8 channels; the model samples 4" "$T/z.npz" --num-samples 2 \
  --vae "$T/vae8.dit" --vae-weights "$VW"
bad "latent channels (safetensors)" "decodes latents of 8 channels" "$T/z.safetensors" --labels 0 \
  --vae "$T/vae8.dit" --vae-weights "$VW"
# sd-vae-ft-ema's tensors are larger than vae-tiny's: every mismatch listed
bad "weights that do not fit" "does not fit the model \([0-9]+ missing, [0-9]+ mismatched" "$T/z.npz" --num-samples 2 \
  --vae sd-vae-ft-ema --vae-weights "$VW"
grep -q "mismatched: decoder.conv_in.weight: checkpoint has \[64, 4, 3, 3\], model expects \[512, 4, 3, 3\]" "$T/err" ||
  { echo "FAIL: the mismatches are not listed"; cat "$T/err"; fail=1; }
bad "--vae without --vae-weights" "vae-weights" "$T/z.npz" --num-samples 2 --vae vae-tiny
bad "--vae-weights without --vae" "--vae-weights goes with --vae" "$T/z.npz" --num-samples 2 --vae-weights "$VW"
bad "no such VAE" "no-such-vae" "$T/z.npz" --num-samples 2 --vae no-such-vae --vae-weights "$VW"
# the digits model is a pixel model: its PNG needs no VAE
"$DITC" sample DiT-digits --weights models/digits/dit-digits.safetensors --sampler ddim --steps 2 --cfg-scale 1 \
  --labels 0 --backend ref --output "$T/digits.png" 2>/dev/null || { echo "FAIL: the digits PNG was refused"; fail=1; }
exit $fail
