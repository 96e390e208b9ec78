"""Produce ``models/`` and the comparison rows of issue 15 from the dmlkit package.

Every run is ``python -m dmlkit.experiments.people`` (the library's trainer, models and metrics);
this file only says which runs to make, runs them a few at a time (one torch thread each), skips
runs whose ``metrics.json`` already exists (so a long grid can be resumed), and collects the table
with ``dmlkit.experiments.people_results``.

    python experiments/people_models.py shipped            # the shipped models (make models)
    python experiments/people_models.py grid --seeds 0 1 2 # the paper-protocol and project rows
    python experiments/people_models.py table              # RESULTS table + curves of the grid runs

``--count/--split`` shrink the data for a smoke run, ``--steps`` (shipped) or ``--images`` (grid, the
image budget: steps = images / batch) shrink the training; ``--models-dir`` keeps a smoke run away
from the committed models.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Grid rows: the paper's protocols (batch 150, SGD) and the project's variants (batch 32, Adam).
ROWS = {
    "paper_binary": (["--protocol", "paper_binary"], 150),
    "paper_dense": (["--protocol", "paper_dense"], 150),
    "log_ratio_first": (["--protocol", "log_ratio_first"], 150),
    # the paper's batches and losses with the project's optimiser (Adam, cosine): which of the two a gap comes from
    "paper_binary+adam": (["--protocol", "paper_binary", "--protocol-optimizer", "adam_cosine"], 150),
    "paper_dense+adam": (["--protocol", "paper_dense", "--protocol-optimizer", "adam_cosine"], 150),
    "log_ratio_first+adam": (["--protocol", "log_ratio_first", "--protocol-optimizer", "adam_cosine"], 150),
    "log_ratio": (["--loss", "log_ratio"], 32),
    "binary_triplet": (["--loss", "binary_triplet"], 32),
    "dense_triplet": (["--loss", "dense_triplet"], 32),
    # several anchor groups (each anchor with its 5 label-space neighbours) per batch of 32
    "log_ratio@4": (["--loss", "log_ratio", "--groups", "4"], 32),
    "binary_triplet@4": (["--loss", "binary_triplet", "--groups", "4"], 32),
    "dense_triplet@4": (["--loss", "dense_triplet", "--groups", "4"], 32),
}


def data_dir(out: str, count: int, size: int) -> str:
    return os.path.join(out, "people", f"synth-s0-n{count}" + ("" if size == 64 else f"-{size}px"))


def ensure_data(a, size: int | None = None) -> str:
    """Generate the synthetic people once (``dmlkit.data.people.generate``), at ``size`` (default ``--size``)."""
    size = a.size if size is None else size
    path = data_dir(a.out, a.count, size)
    if not DRY_RUN and not os.path.exists(os.path.join(path, "person_keypoints.json")):
        run([sys.executable, "-m", "dmlkit.data.people.generate", "--out", path, "--count", str(a.count),
             "--seed", "0", "--size", str(size), "--captions-per-image", "5", "--quiet",
             "--workers", str(os.cpu_count() or 1)], None)
    return path


def run(cmd: list[str], log: str | None) -> None:
    """Run one command; its output goes to ``log``. A failure stops everything with the log's tail."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    start = time.time()
    if log is None:
        result = subprocess.run(cmd, env=env)
    else:
        with open(log, "w") as f:
            result = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = open(log).read()[-2000:] if log else ""
        raise SystemExit(f"error: {' '.join(cmd[2:4])} failed (exit {result.returncode}){': ' + tail if tail else ''}")
    print(f"done in {time.time() - start:.0f} s: {log or ' '.join(cmd[2:])}", flush=True)


def people_cmd(a, data: str, label: str, dim: int, seed: int, steps: int, extra: list[str], out: str) -> list[str]:
    train, queries, gallery = a.split
    return [sys.executable, "-m", "dmlkit.experiments.people", "--data", data, "--count", str(a.count),
            "--label", label, "--train", str(train), "--queries", str(queries), "--gallery", str(gallery),
            "--dim", str(dim), "--seed", str(seed), "--steps", str(steps), "--threads", "1", "--out", out, *extra]


def _neighbours_cached(data: str, label: str) -> bool:
    """Whether ``dmlkit.experiments.people`` has cached a label-space neighbour search of ``label`` in ``data``."""
    return os.path.isdir(data) and any(f.startswith(label) and "_neighbours_k" in f for f in os.listdir(data))


DRY_RUN = False  # --dry-run: print the commands instead of running them


def run_all(jobs: list[tuple[list[str], str]], parallel: int) -> None:
    """Run (command, log) pairs, ``parallel`` at a time; the first of each label computes the
    label-space neighbours, so those go first and alone."""
    pending = [(c, log) for c, log in jobs if not os.path.exists(os.path.join(c[c.index("--out") + 1], "metrics.json"))]
    if DRY_RUN:
        for cmd, _ in pending:
            print("python " + " ".join(cmd[1:]))
        return
    firsts, seen = [], set()
    for job in pending:
        cmd = job[0]
        key = cmd[cmd.index("--label") + 1]
        if key not in seen and not _neighbours_cached(cmd[cmd.index("--data") + 1], key):
            seen.add(key)
            firsts.append(job)
    rest = [j for j in pending if j not in firsts]
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda j: run(*j), firsts))
        list(pool.map(lambda j: run(*j), rest))


# The shipped models (seed 0): (label, loss, file stem, dim, generated image size, steps as a multiple of --steps,
# more flags). The defaults are the best pose and caption rows of models/RESULTS.md by held-out nDCG and label
# distance: log-ratio on the ResNet-style embedder over 112 px person crops (width 16 for pose: trained on the
# CPU; width 32 for captions: trained on a GPU); the 64 px CNN models stay beside them.
RESNET112 = ("--arch", "resnet", "--crop", "112")
SHIPPED = (
    ("pose", "log_ratio", "logratio-resnet112", 128, 160, 2, RESNET112 + ("--width", "16")),
    ("pose", "binary_triplet", "binary", 128, 64, 1, ()),
    ("caption", "binary_triplet", "binary", 128, 64, 1, ()),
    ("pose", "log_ratio", "logratio", 128, 64, 1, ()),
    ("caption", "log_ratio", "logratio", 128, 64, 1, ()),
    ("pose", "log_ratio", "logratio", 16, 64, 1, ()),
    ("caption", "log_ratio", "logratio", 16, 64, 1, ()),
    ("caption", "log_ratio", "logratio-resnet112", 128, 160, 2, RESNET112),
)


def shipped(a) -> int:
    """The shipped models of ``SHIPPED`` (seed 0), each with its card's score section."""
    runs = os.path.join(a.out, "people18")
    if not DRY_RUN:
        os.makedirs(runs, exist_ok=True)
        os.makedirs(a.models_dir, exist_ok=True)
    jobs, spreads = [], []
    train, queries, gallery = a.split
    for label, loss, stem, dim, size, steps, extra in SHIPPED:
        data = ensure_data(a, size)
        name = f"{label}-{stem}-d{dim}"
        model = os.path.join(a.models_dir, f"{name}.safetensors")
        device = ["--device", a.device] if a.device != "cpu" else []
        if size != 64:  # the card's command then regenerates the right data where it is missing
            extra = (*extra, "--data-size", str(size))
        cmd = people_cmd(a, data, label, dim, 0, a.steps * steps,
                         ["--loss", loss, *extra, *device, "--export", model], os.path.join(runs, f"{name}-s0"))
        jobs.append((cmd, os.path.join(runs, f"{name}-s0.log")))
        # the card's "what a score means" section, measured on the exported file through `dml embed`
        crop = ["--crop", extra[extra.index("--crop") + 1]] if "--crop" in extra else []
        spreads.append([sys.executable, "-m", "dmlkit.experiments.score_spread", "--model", model, "--data", data,
                        "--queries", f"{train}:{train + queries}",
                        "--gallery", f"{train + queries}:{train + queries + gallery}", *crop,
                        "--card", os.path.splitext(model)[0] + ".md"])
    run_all(jobs, a.jobs)
    for spread in spreads:
        if DRY_RUN:
            print("python " + " ".join(spread[1:]))
        else:
            log = os.path.join(runs, os.path.basename(spread[spread.index("--model") + 1]) + ".spread.log")
            run(spread, log)
    return 0


def grid(a) -> int:
    """Every row x label x dim x seed at the same image budget."""
    data = ensure_data(a)
    runs = os.path.join(a.out, "people-grid")
    if not DRY_RUN:
        os.makedirs(runs, exist_ok=True)
    jobs = []
    for row in a.rows:
        extra, batch = ROWS[row]
        extra = extra + a.extra
        for label in a.labels:
            for dim in a.dims:
                for seed in a.seeds:
                    name = f"{label}-{row}-d{dim}-s{seed}{a.tag}"
                    steps = max(1, a.images // batch)
                    cmd = people_cmd(a, data, label, dim, seed, steps, extra, os.path.join(runs, name))
                    jobs.append((cmd, os.path.join(runs, name + ".log")))
    run_all(jobs, a.jobs)
    return 0 if DRY_RUN else table(a)


def table(a) -> int:
    runs = os.path.join(a.out, "people-grid")
    dirs = sorted(os.path.join(runs, d) for d in os.listdir(runs)) if os.path.isdir(runs) else []
    cmd = [sys.executable, "-m", "dmlkit.experiments.people_results", *(dirs or [runs]),
           "--markdown", os.path.join(runs, "table.md"), "--plots", runs]
    return subprocess.run(cmd).returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="experiments/people_models.py", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("shipped", "grid", "table"))
    p.add_argument("--out", default=os.path.join(ROOT, "out"), help="data and run directories go here")
    p.add_argument("--models-dir", default=os.path.join(ROOT, "models"), help="where `shipped` exports to")
    p.add_argument("--count", type=int, default=18000, help="people to generate")
    p.add_argument("--size", type=int, default=64, help="generated image size (use 160+ with --extra --crop 112)")
    p.add_argument("--split", type=int, nargs=3, default=(8000, 2000, 8000), metavar=("TRAIN", "QUERIES", "GALLERY"))
    p.add_argument("--steps", type=int, default=3000, help="shipped: training steps")
    p.add_argument("--images", type=int, default=96000, help="grid: images per run (steps = images / batch)")
    p.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS))
    p.add_argument("--labels", nargs="+", choices=("pose", "caption"), default=["pose", "caption"])
    p.add_argument("--dims", nargs="+", type=int, default=[16, 128])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="grid: more dmlkit.experiments.people flags for every run (last on the line), "
                        "e.g. --extra --arch resnet --width 16 --crop 112")
    p.add_argument("--tag", default="", help="grid: suffix of the run names (to keep variants apart)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="shipped: where the models train (the ResNet-style one takes hours on a 2-core CPU)")
    p.add_argument("--dry-run", action="store_true", help="print the training commands, run nothing")
    a = p.parse_args(argv)
    global DRY_RUN
    DRY_RUN = a.dry_run
    # Runs start in training/ with paths relative to it, so the command a model card records
    # ("cd training && python -m dmlkit.experiments.people ...") names no path of this machine.
    training = os.path.join(ROOT, "training")
    a.out, a.models_dir = (os.path.relpath(os.path.abspath(d), training) for d in (a.out, a.models_dir))
    os.chdir(training)
    if sum(a.split) > a.count:
        print(f"error: --split {a.split} needs {sum(a.split)} people, --count is {a.count}", file=sys.stderr)
        return 1
    return {"shipped": shipped, "grid": grid, "table": table}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
