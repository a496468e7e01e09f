"""Training bridge: train logic gate networks in PyTorch and export them to `.lgn` files."""
