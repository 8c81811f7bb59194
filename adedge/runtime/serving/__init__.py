"""`adedge serve`: the Open Inference Protocol server (HTTP and gRPC) over the inference core."""
