"""Every default a user can override, in one torch-free place: the command line's options and the
library's signatures read these same constants, so `--help` states what the library does."""

from adedge.choices import Overlays, Resize

BACKBONE = "efficientnet_lite1"  # beat lite0 on pill for both models (benchmarks/results/cflow_ablation.md)
SEED = 42
RESIZE = Resize.ANTIALIAS
FALSE_REJECT = 0.01  # the share of good parts the NG threshold may reject
MAX_DROP = 0.005  # INT8: half a point of image or pixel AUROC
SETTLE_SECONDS = 1.0  # how long a watched file must stay unchanged before it is taken
RECONNECT_SECONDS = 60.0  # seconds without a frame from a camera or stream before giving up
OVERLAYS = Overlays.NG
MAX_BODY_MB = 64  # 8 full-HD frames as binary tensors
