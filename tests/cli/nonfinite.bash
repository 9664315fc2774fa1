# Helpers of cli/nonfinite*.sh (after common.bash): a model input with a chosen first value, the
# overflowing checkpoint.

# nonfinite_input FILE FIRST: the digits model's x [1,1,16,16] (FIRST: the first value's 4 bytes as
# printf escapes, the rest 0), t = 10 and y = 3
nonfinite_input() {
  local h='{"x":{"dtype":"F32","shape":[1,1,16,16],"data_offsets":[0,1024]},"t":{"dtype":"F32","shape":[1],"data_offsets":[1024,1028]},"y":{"dtype":"I32","shape":[1],"data_offsets":[1028,1032]}}'
  while [ $(( ${#h} % 8 )) != 0 ]; do h="$h "; done
  { printf "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s' "$h"; printf "$2"
    head -c 1020 /dev/zero; printf '\x00\x00\x20\x41\x03\x00\x00\x00'; } >"$1"
}

# huge_checkpoint IN OUT: IN with row 0 of blocks.1.attn.proj.weight at 1e38 (0x7e967699)
huge_checkpoint() {
  local n at
  n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  at=$(head -c $((8 + n)) "$1" | tail -c "$n" | grep -o '"blocks.1.attn.proj.weight":{[^}]*}' | grep -o 'data_offsets":\[[0-9]*' | grep -o '[0-9]*$')
  cp "$1" "$2"
  for _ in $(seq 128); do printf '\x99\x76\x96\x7e'; done | dd of="$2" bs=1 seek=$((8 + n + at)) conv=notrunc status=none
}
