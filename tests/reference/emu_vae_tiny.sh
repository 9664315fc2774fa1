#!/usr/bin/env bash
# vae-tiny on the emulated device (--backend emu, the generated kernels on the CPU): the VAE decoder
# against diffusers' AutoencoderKL, fp32 1e-4, with both attention namings.
source "$(dirname "$0")/common.bash"
BACKEND_ARGS=(--backend emu)
check_vae vae-tiny
