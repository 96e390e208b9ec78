"""Make ``dmlkit`` importable from a plain checkout (no editable install needed) and keep torch to
few threads: the suite must stay fast on a small shared CPU."""

import os
import sys

_TRAINING = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TRAINING not in sys.path:
    sys.path.insert(0, _TRAINING)

import torch  # noqa: E402

torch.set_num_threads(1)
# PyTorch 2.15's bundled oneDNN (mkldnn) corrupts the heap ("double free or corruption") in the backward pass
# of the small people ResNet at one intra-op thread on an AVX2-only AMD EPYC (Zen 2), measured 2026-12-02; its
# native CPU kernels give the same results within float rounding. Training outside the tests keeps mkldnn.
torch.backends.mkldnn.enabled = False
