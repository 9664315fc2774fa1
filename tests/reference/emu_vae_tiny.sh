#!/usr/bin/env bash
# vae-tiny on the emulated device (--backend emu, the generated kernels on the CPU): the VAE decoder
# against diffusers' AutoencoderKL, fp32 1e-4, with both attention namings; f16 and bf16 within 1e-2.
source "$(dirname "$0")/common.bash"
BACKEND_ARGS=(--backend emu)
check_vae vae-tiny
# f16 and bf16 plans (their mid-block attention on the tensor-core kernel) within 1e-2
for p in f16 bf16; do
  BACKEND_ARGS=(--backend emu --precision "$p")
  TOL_VAE=1e-2 check_vae vae-tiny
done
