"""Make ``dmlkit`` importable from a plain checkout (no editable install needed) and keep torch to
few threads: the suite must stay fast on a small shared CPU."""

import os
import sys

_TRAINING = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TRAINING not in sys.path:
    sys.path.insert(0, _TRAINING)

import torch  # noqa: E402

torch.set_num_threads(1)
