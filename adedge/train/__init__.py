"""Training stage (torch): backbones, DFM, calibration and the run folder format."""
