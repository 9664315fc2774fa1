#!/usr/bin/env bash
# paper-att-fgq: the seed study's variant, one forward pass against the study's own model code.
source "$(dirname "$0")/common.bash"
check_forward paper-att-fgq
