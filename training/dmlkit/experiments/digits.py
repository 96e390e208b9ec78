"""Zero-shot retrieval on scikit-learn's digits: train on digits 0-4, retrieve among digits 5-9.

``python -m dmlkit.experiments.digits [--seeds 0 1 2 3 4] [--epochs 20] [--json OUT.json]``

Every method trains the same MLP embedder (64 -> 128 -> 32, L2-normalised) with the same data,
batches (PML's MPerClassSampler, 8 per class, batch 40), optimiser (Adam, lr 1e-3) and number of
epochs; only the loss differs. Metrics are measured once, after the last epoch, on the test digits
(leave-one-out over the 5-9 split): no early stopping on test data. Prints a Markdown table of
mean ± sample std over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from ..config import DEFAULTS, merge
from ..data.digits import load_digits_split
from ..evaluation import class_metrics
from ..train import run

METHODS: dict[str, dict] = {
    "RLL": {"loss": {"name": "rll", "params": {}}},
    "RLL + intra-class ranking": {"loss": {"name": "rll", "params": {}},
                                  "intra_class": {"weight": 1.0, "levels": 3, "step": 0.1, "margin": 0.15}},
    "triplet (PML, margin 0.1, all triplets)": {"loss": {"name": "triplet", "params": {"margin": 0.1}}},
    "contrastive (PML defaults)": {"loss": {"name": "contrastive", "params": {}}},
    "multi-similarity (PML defaults)": {"loss": {"name": "multi_similarity", "params": {}}},
}


def method_config(method: str, seed: int, epochs: int) -> dict:
    """The full training config of one (method, seed) cell."""
    base = merge(DEFAULTS, {"seed": seed, "epochs": epochs, "out_dir": None, "plots": False, "export": False,
                            "progress": False, "eval": {"every": 0, "ks": [1, 2, 4, 8]}})
    return merge(base, METHODS[method])


def raw_pixel_baseline() -> dict:
    """Retrieval on the normalised raw pixels of the test digits (no training), for scale."""
    _, _, x, y = load_digits_split()
    x = x.double().numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return class_metrics(x, y.numpy(), ks=[1])


def untrained_mlp(seeds: list[int]) -> dict:
    """Retrieval with the randomly initialised MLP of each seed (what training starts from)."""
    from ..builders import build_model
    from ..train import embed_all, seed_everything

    import torch

    _, _, x, y = load_digits_split()
    out: dict[str, list[float]] = {"recall@1": [], "map@r": []}
    for seed in seeds:
        cfg = method_config("RLL", seed, 1)
        seed_everything(seed)
        model = build_model(cfg, x.shape[1])
        m = class_metrics(embed_all(model, x, torch.device("cpu")), y.numpy(), ks=[1])
        out["recall@1"].append(m["recall@1"])
        out["map@r"].append(m["map@r"])
    return out


def summarise(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.experiments.digits", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--json", help="also write every per-seed result here")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    results: dict[str, list[dict]] = {}
    start = time.time()
    for method in args.methods:
        for seed in args.seeds:
            t0 = time.time()
            final = run(method_config(method, seed, args.epochs), log=lambda *_: None)
            final["train_seconds"] = round(time.time() - t0, 2)
            results.setdefault(method, []).append({"seed": seed, **final})
            print(f"{method:45s} seed {seed}: R@1 {final['recall@1']:.4f}  MAP@R {final['map@r']:.4f} "
                  f"({final['train_seconds']} s)", file=sys.stderr)
    total = time.time() - start
    raw = raw_pixel_baseline()
    init = untrained_mlp(args.seeds)
    print(f"\n| method | Recall@1 (%) | MAP@R (%) | seeds |\n|---|---|---|---|")
    for method, rows in results.items():
        r1 = summarise([r["recall@1"] for r in rows])
        mapr = summarise([r["map@r"] for r in rows])
        print(f"| {method} | {r1} | {mapr} | {len(rows)} |")
    print(f"| untrained MLP (random init, reference) | {summarise(init['recall@1'])} | {summarise(init['map@r'])} "
          f"| {len(args.seeds)} |")
    print(f"| raw pixels, no training (reference) | {100 * raw['recall@1']:.2f} | {100 * raw['map@r']:.2f} | - |")
    base = "RLL"
    if base in results:
        # paired by seed: same init and same batches, only the loss differs
        print(f"\nPaired differences to {base} (same seed), mean ± std over seeds, seeds where better:")
        print("\n| method | Δ Recall@1 (pts) | Δ MAP@R (pts) |\n|---|---|---|")
        ref = {r["seed"]: r for r in results[base]}
        for method, rows in results.items():
            if method == base:
                continue
            cells = []
            for key in ("recall@1", "map@r"):
                diffs = [r[key] - ref[r["seed"]][key] for r in rows if r["seed"] in ref]
                wins = sum(d > 0 for d in diffs)
                cells.append(f"{summarise(diffs)} ({wins}/{len(diffs)} better)")
            print(f"| {method} | {cells[0]} | {cells[1]} |")
    print(f"\ntotal time: {total:.1f} s for {sum(len(v) for v in results.values())} runs of {args.epochs} epochs")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"epochs": args.epochs, "seeds": args.seeds, "seconds": round(total, 1),
                       "raw_pixels": raw, "untrained_mlp": init, "results": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
