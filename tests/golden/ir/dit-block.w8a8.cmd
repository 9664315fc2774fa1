# One block with --quantize w8a8 (scope blocks): each of qkv, proj, fc1 and fc2 becomes qlinear over
# the activation's per-token int8 levels and scales (qscale over the last axis, quantize: i8) and the
# weight's per-row levels and scales (weight-only: computed once); the embedders, adaLN and the final
# layer stay linear; fuse pairs each activation's qscale and quantize (quant-rows: one row kernel) and
# puts fc1's GELU on its qlinear (gemm-epilogue).
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=1 --set num_heads=2 --set num_classes=10 --quantize w8a8
