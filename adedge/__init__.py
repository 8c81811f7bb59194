"""adedge: train, export and run unsupervised visual anomaly detectors on a line-side PC."""

__version__ = "0.1.0"
