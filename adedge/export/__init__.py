"""Export stage: the trained Detector -> ONNX or OpenVINO IR + adedge.json (the bundle)."""
