"""The inference core: a bundle's graph run by OpenVINO or ONNX Runtime (engines), frames in and typed
results out (model), and the one rule that turns a score into a verdict (verdict)."""
