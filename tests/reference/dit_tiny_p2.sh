#!/usr/bin/env bash
# dit-tiny-p2: forward, forward_with_cfg, DDIM and DDPM against the original DiT code.
source "$(dirname "$0")/common.bash"
check_forward dit-tiny-p2
check_cfg dit-tiny-p2
check_sampler dit-tiny-p2 ddim
check_sampler dit-tiny-p2 ddpm
