#!/usr/bin/env bash
# paper-moe-8e2a: the seed study's variant, one forward pass against the study's own model code.
source "$(dirname "$0")/common.bash"
check_forward paper-moe-8e2a
