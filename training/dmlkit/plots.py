"""PNG plots of a run's loss and retrieval curves (matplotlib, headless)."""

from __future__ import annotations

import os


def plot_history(history: list[dict], out_dir: str) -> list[str]:
    """Write ``loss.png`` and ``metrics.png`` from per-epoch records; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    written = []
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs, [h["loss"] for h in history], marker=".")
    ax.set_xlabel("epoch"), ax.set_ylabel("training loss"), ax.set_title("loss")
    fig.tight_layout()
    path = os.path.join(out_dir, "loss.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    keys = [k for k in (history[-1] if history else {}) if k.startswith(("recall@", "map@", "ndcg@", "r_precision"))]
    if keys:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for k in keys:
            pts = [(h["epoch"], h[k]) for h in history if k in h]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=k)
        ax.set_xlabel("epoch"), ax.set_ylabel("test metric"), ax.set_title("retrieval on the test split")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, "metrics.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
