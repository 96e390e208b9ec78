"""Collect people-embedder runs (``metrics.json`` of ``dmlkit.experiments.people --out``) into the
comparison table (mean +- sample std over seeds) and the paper-style curves.

    python -m dmlkit.experiments.people_results RUN_DIR [RUN_DIR ...] --markdown table.md --plots DIR
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import defaultdict

COLUMNS = ["ndcg@10", "ndcg@50", "ndcg@100", "label_distance@1", "label_distance@5", "label_distance@10"]
BOUNDS = ("label-space oracle", "random-init CNN", "raw pixels (16x16)")
LOSS_NAMES = {"protocol:log_ratio_first": "paper protocol: log-ratio (batch 150, first anchor, plain, unnormalised)",
              "protocol:paper_dense": "paper protocol: dense triplet (batch 150, margin 0.03 sq., mean)",
              "protocol:paper_binary": "paper protocol: binary triplet (5 of top 30, margin 0.2 sq., mean)",
              "log_ratio": "log-ratio", "log_ratio_first": "log-ratio, first-sample anchor",
              "dense_triplet": "dense triplet (in-batch, violated only)",
              "binary_triplet": "binary triplet (in-batch 5 nearest, violated only; not the paper's baseline)"}


def load_runs(dirs: list[str]) -> list[dict]:
    """The ``metrics.json`` of each run directory (directories without one are skipped)."""
    runs = []
    for d in dirs:
        path = os.path.join(d, "metrics.json")
        if os.path.exists(path):
            with open(path) as f:
                run = json.load(f)
            run["dir"] = d
            structure = os.path.join(d, "structure.json")  # from dmlkit.experiments.people_structure
            if os.path.exists(structure):
                with open(structure) as f:
                    run["structure"] = json.load(f)
            runs.append(run)
    return runs


def _key(run: dict) -> tuple[str, str, int]:
    """(label, row name, dim); runs with several anchor groups per batch are rows of their own."""
    c = run["config"]
    loss, groups = c.get("loss", "log_ratio"), int(c.get("groups", 1))
    # what else differs from the default setup names the row too (architecture, crops, pose scale)
    variant = "".join(f"|{v}" for v in (c.get("arch", "cnn") != "cnn" and c["arch"],
                                         c.get("crop") and f"crop {c['crop']}",
                                         c.get("pose_scale", "torso") != "torso" and f"label {c['pose_scale']}",
                                         c.get("protocol_optimizer") and f"optimizer {c['optimizer']}") if v)
    return c.get("label", "pose"), (loss if groups == 1 else f"{loss}@{groups}") + variant, int(c["dim"])


def _row_name(loss: str) -> str:
    loss, *variant = loss.split("|")
    base, _, groups = loss.partition("@")
    name = LOSS_NAMES.get(base, base)
    name = f"{name}, {groups} anchor groups per batch" if groups else name
    return ", ".join([name] + variant)


def _trained_row(run: dict, source: str = "metrics") -> dict:  # stored under the loss name
    loss = run["config"].get("loss", "log_ratio")
    return run[source].get(loss) or run[source]["log-ratio (dense triplets)"]


def _base(row: str) -> str:
    return row.split("|")[0].split("@")[0]


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(runs: list[dict], label: str, source: str = "metrics", columns: list[str] = COLUMNS) -> str:
    """Markdown table for one label space: trained rows by (loss, dim) with seeds, then the bounds.
    ``source`` is "metrics" (metrics.json) or "structure" (structure.json, runs without one are skipped)."""
    groups: dict[tuple, dict[int, dict]] = defaultdict(dict)
    bounds: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for run in runs:
        lab, loss, dim = _key(run)
        if lab != label or source not in run:
            continue
        seed = int(run["config"]["seed"])
        groups[(loss, dim)][seed] = _trained_row(run, source)  # one row per seed (a rerun replaces it)
        for b in BOUNDS:
            if b in run[source]:
                # the oracle and raw pixels do not depend on dim; the random-init CNN does
                bkey = (b, dim) if b == "random-init CNN" else (b, None)
                bounds[bkey][seed] = run[source][b]
    lines = ["| row | d | seeds | " + " | ".join(columns) + " |", "|---|---|---|" + "---|" * len(columns)]
    order = sorted(groups, key=lambda k: (-k[1], list(LOSS_NAMES).index(_base(k[0]))
                                          if _base(k[0]) in LOSS_NAMES else 9, k[0]))
    for loss, dim in order:
        seeds = groups[(loss, dim)]
        cells = [_fmt([seeds[s][c] for s in sorted(seeds)]) for c in columns]
        lines.append(f"| {_row_name(loss)} | {dim} | {len(seeds)} | " + " | ".join(cells) + " |")
    for (b, dim), seeds in sorted(bounds.items(), key=lambda kv: (BOUNDS.index(kv[0][0]), -(kv[0][1] or 0))):
        cells = [_fmt([seeds[s][c] for s in sorted(seeds)]) for c in columns]
        lines.append(f"| {b} | {dim if dim else '-'} | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(runs: list[dict], label: str, path: str) -> None:
    """Mean label distance@K and nDCG@K against K (mean over seeds, one curve per seed counted once),
    one line per (loss, dim) plus the bounds. Colour = loss, solid = d 128 (largest), dotted = smaller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lines: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for run in runs:
        lab, loss, dim = _key(run)
        if lab != label or "curves" not in run:
            continue
        seed = int(run["config"]["seed"])
        lines[(loss, dim)][seed] = run["curves"][run["config"].get("loss", "log_ratio")]
        for b in BOUNDS:
            if b in run["curves"]:
                lines[(b, dim if b == "random-init CNN" else None)][seed] = run["curves"][b]
    colours = {"log_ratio": "C0", "log_ratio_first": "C3", "dense_triplet": "C1", "binary_triplet": "C2",
               "label-space oracle": "C4",
               "random-init CNN": "0.5", "raw pixels (16x16)": "C5"}
    dims = sorted({k[1] for k in lines if k[1] is not None})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for (name, dim), seeds in sorted(lines.items(), key=lambda kv: (kv[0][0] in BOUNDS, kv[0][0], -(kv[0][1] or 0))):
        curves = [seeds[s] for s in sorted(seeds)]
        k = curves[0]["k"]
        bound = name in BOUNDS
        style = "--" if bound else ("-" if dim == dims[-1] else ":")
        text = f"{_row_name(name)}" + (f", d={dim}" if dim else "") + f" ({len(curves)} seeds)"
        for ax, key in zip(axes, ("label_distance", "ndcg")):
            ax.plot(k, np.mean([c[key] for c in curves], axis=0), style, color=colours.get(name, "C9" if "@" in name else None), label=text,
                    linewidth=1.0 if bound else 1.6)
    axes[0].set(xlabel="K", ylabel="mean label distance of the top K (lower is better)",
                title=f"{label}: label distance@K")
    axes[1].set(xlabel="K", ylabel="nDCG@K, gain 1/(1+d)", title=f"{label}: nDCG@K")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def retrieval_examples(run_dir: str, path: str, n: int = 8, top: int = 6, scale: int = 1) -> None:
    """A PNG grid: the first ``n`` held-out queries of a run (left column) and their ``top`` nearest
    gallery images under the run's trained model (``model.pt``), nearest first."""
    import numpy as np
    import torch
    from PIL import Image

    from ..data.people import load_people
    from .people import embed, make_embedder

    with open(os.path.join(run_dir, "metrics.json")) as f:
        c = json.load(f)["config"]
    need = c["train"] + c["queries"] + c["gallery"]
    data = load_people(os.path.join(c["data"], "person_keypoints.json"), os.path.join(c["data"], "images"),
                       limit=need)
    if c.get("crop"):  # the run saw person crops
        from ..data.people.augment import PersonCrops

        data.images, _ = PersonCrops.of_people(data, int(c["crop"])).fixed(range(need))
    # the output normalisation has no weights, so the default one loads any run's state
    model = make_embedder(c.get("arch", "cnn"), int(c["dim"]), data.images.shape[1], int(c.get("width", 32)))
    model.load_state_dict(torch.load(os.path.join(run_dir, "model.pt")))
    q = data.images[c["train"]:c["train"] + n]
    g = data.images[c["train"] + c["queries"]:need]
    eq, eg = embed(model, q), embed(model, g)
    order = np.argsort(((eq[:, None] - eg[None]) ** 2).sum(-1), axis=1, kind="stable")[:, :top]
    side = q.shape[1] * scale
    sheet = Image.new("RGB", ((top + 1) * side + 8, n * side), "white")
    for i in range(n):
        sheet.paste(Image.fromarray(q[i]).resize((side, side)), (0, i * side))
        for j, gi in enumerate(order[i]):
            sheet.paste(Image.fromarray(g[gi]).resize((side, side)), ((j + 1) * side + 8, i * side))
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.experiments.people_results",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (each with metrics.json)")
    p.add_argument("--markdown", help="write the tables here")
    p.add_argument("--plots", help="directory for <label>_curves.png")
    p.add_argument("--examples", help="run directory whose model draws retrieval examples (with --plots)")
    a = p.parse_args(argv)
    runs = load_runs(a.runs)
    if not runs:
        print("error: no metrics.json in the given directories", file=sys.stderr)
        return 1
    labels = sorted({_key(r)[0] for r in runs})
    text = "\n\n".join(f"### {lab}\n\n{table(runs, lab)}" for lab in labels) + "\n"
    for lab in labels:
        if any("structure" in r and _key(r)[0] == lab for r in runs):
            text += f"\n### {lab}: order kept beyond the top K (Spearman)\n\n" + table(
                runs, lab, "structure", ["spearman_all", "spearman_near100"]) + "\n"
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text)
    if a.plots:
        os.makedirs(a.plots, exist_ok=True)
        for lab in labels:
            plot_curves(runs, lab, os.path.join(a.plots, f"{lab}_curves.png"))
        if a.examples:
            retrieval_examples(a.examples, os.path.join(a.plots, "retrieval_examples.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
