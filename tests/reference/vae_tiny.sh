#!/usr/bin/env bash
# vae-tiny: the VAE decoder (models/vae.dit, entry decode) on the reference executor against diffusers'
# AutoencoderKL, fp32 1e-4, with both attention namings.
source "$(dirname "$0")/common.bash"
check_vae vae-tiny
