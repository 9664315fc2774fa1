# Constant folding: the timestep embedding's frequencies exp(-ln(10000) * i / 128) become one constant.
models/dit.dit --set input_size=8 --set in_channels=4 --set patch_size=2 --set hidden_size=32 --set depth=1 --set num_heads=2 --set num_classes=10 --passes fold-constants,dce
