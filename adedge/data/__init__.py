"""Torch-free data: dataset readers, the one image decode/resize path, the synthetic generator."""
