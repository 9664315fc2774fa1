# One block with --quantize w8 --quantize-scope all: every linear (embedder MLP, the hoisted adaLN
# product, the block's four, the final layer) reads dequantize(quantize(W, s), s), s = qscale(W)
# per output row; only dequantize runs per forward.
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=1 --set num_heads=2 --set num_classes=10 --quantize w8 --quantize-scope all
