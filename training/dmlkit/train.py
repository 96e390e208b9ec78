"""Training CLI: ``python -m dmlkit.train --config CONFIG.yaml [--set key=value ...]``.

A run writes into ``out_dir``: ``config.yaml`` (the merged config), ``metrics.csv`` and
``metrics.json`` (one record per epoch: loss, time, test metrics), ``checkpoints/last.pt`` and
``checkpoints/best.pt``, ``loss.png`` / ``metrics.png``, and ``model.safetensors`` through
``dmlkit.export.export_model`` when that module is available.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time

import numpy as np
import torch
import yaml

from .builders import build_data, build_loader, build_loss, build_model, build_optimizer
from .config import load_config
from .evaluation import class_metrics, graded_metrics


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a run is repeatable on the same machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (error if unavailable) or ``auto`` (CUDA when present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    return torch.device(name)


@torch.no_grad()
def embed_all(model: torch.nn.Module, x: torch.Tensor, device: torch.device, batch: int = 1024) -> np.ndarray:
    """Embeddings of ``x`` in eval mode, as float64 NumPy, L2-normalised."""
    model.eval()
    out = [model(x[i:i + batch].to(device)).double().cpu() for i in range(0, len(x), batch)]
    e = torch.cat(out)
    return torch.nn.functional.normalize(e, dim=1).numpy()


def evaluate(model, data, device, ks) -> dict:
    """Test-split metrics: class metrics (leave-one-out) or graded metrics for continuous labels."""
    e = embed_all(model, data.x_test, device)
    if data.continuous:
        top = [k for k in ks if k < len(e)] or [1]
        return graded_metrics(e, data.y_test.numpy(), ks=top)
    m = class_metrics(e, data.y_test.numpy(), ks=ks)
    m.pop("num_queries")
    return m


def primary_metric(metrics: dict) -> str:
    """The metric that picks ``best.pt``: MAP@R for classes, the first nDCG@K for continuous labels."""
    return "map@r" if "map@r" in metrics else next(k for k in metrics if k.startswith("ndcg@"))


def try_export(model: torch.nn.Module, example: torch.Tensor, path: str, log, input_scale: float | None = None) -> str:
    """Export through ``dmlkit.export`` if it exists. Returns 'exported', 'skipped' or 'failed: ...'.

    ``input_scale`` is the data loader's scaling of raw inputs (digits: 1/16), written into the file."""
    try:
        from . import export  # written alongside; absent in older checkouts
    except ModuleNotFoundError as err:
        if err.name and err.name.endswith("dmlkit.export"):
            log("export skipped: dmlkit.export is not available in this checkout")
            return "skipped"
        raise
    model = model.cpu().eval()
    try:
        if input_scale is None:
            export.export_model(model, example.cpu(), path)
        else:
            export.export_model(model, example.cpu(), path, input_scale=input_scale)
    except Exception as err:  # report, keep the checkpoints
        log(f"export failed: {type(err).__name__}: {err}")
        return f"failed: {type(err).__name__}: {err}"
    log(f"exported {path}")
    return "exported"


def run(cfg: dict, log=print) -> dict:
    """Train and evaluate one configuration; returns the final record (and writes ``out_dir``)."""
    if int(cfg["epochs"]) < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg['epochs']}")
    seed_everything(int(cfg["seed"]))
    device = pick_device(cfg["device"])
    data = build_data(cfg)
    model = build_model(cfg, data.x_train.shape[1]).to(device)
    step_loss = build_loss(cfg, model, data)
    loader = build_loader(cfg, data, int(cfg["seed"]))
    step_loss.module.to(device)
    opt, sched = build_optimizer(cfg, model, step_loss.module.parameters())
    out = cfg.get("out_dir")
    if out:
        os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
        with open(os.path.join(out, "config.yaml"), "w") as fh:
            yaml.safe_dump(cfg, fh, sort_keys=False)
    ks = list(cfg["eval"].get("ks", [1, 2, 4, 8]))
    history: list[dict] = []
    best = None
    show = bool(cfg.get("progress", True))
    from tqdm import tqdm

    start = time.time()
    for epoch in range(1, int(cfg["epochs"]) + 1):
        model.train()
        if hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(epoch)
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg['epochs']}", leave=False, disable=not show)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            loss = step_loss(model, x, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {epoch}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            count += 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        if sched is not None:
            sched.step()
        record = {"epoch": epoch, "loss": total / max(count, 1), "seconds": round(time.time() - start, 3),
                  "lr": opt.param_groups[0]["lr"]}
        every = int(cfg["eval"].get("every", 1))
        metrics: dict = {}
        # the last epoch is always evaluated; every = 0 evaluates only then
        if epoch == int(cfg["epochs"]) or (every > 0 and epoch % every == 0):
            metrics = evaluate(model, data, device, ks)
            record.update(metrics)
        history.append(record)
        if show:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in record.items()}
            log(json.dumps(shown))
        if out:
            _write_logs(history, out)
            key = primary_metric(metrics) if metrics else None
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "config": cfg}
            if int(cfg.get("checkpoint_every", 1)) > 0 and epoch % int(cfg.get("checkpoint_every", 1)) == 0:
                torch.save(state, os.path.join(out, "checkpoints", "last.pt"))
            if key and (best is None or record[key] > best):
                best = record[key]
                torch.save(state, os.path.join(out, "checkpoints", "best.pt"))
    final = dict(history[-1])
    if out:
        torch.save({"model": model.state_dict(), "epoch": final["epoch"], "config": cfg},
                   os.path.join(out, "checkpoints", "last.pt"))
        if cfg.get("plots", True):
            from .plots import plot_history

            plot_history(history, out)
        if cfg.get("export", True):
            final["export"] = try_export(model, data.x_train[:1], os.path.join(out, "model.safetensors"), log,
                                         input_scale=data.input_scale)
    return final


def _write_logs(history: list[dict], out: str) -> None:
    keys: list[str] = []
    for h in history:
        keys += [k for k in h if k not in keys]
    with open(os.path.join(out, "metrics.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(history, fh, indent=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.train", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="YAML config (see training/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set loss.params.margin=0.3 (repeatable)")
    p.add_argument("--out", help="output directory (out_dir)")
    p.add_argument("--loss", help="loss name (loss.name)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["cpu", "cuda", "auto"])
    p.add_argument("--no-export", action="store_true", help="do not export the final model")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    args = p.parse_args(argv)
    overrides = list(args.set)
    for flag, key in (("out", "out_dir"), ("loss", "loss.name"), ("epochs", "epochs"), ("batch_size", "batch_size"),
                      ("lr", "optimizer.lr"), ("seed", "seed"), ("device", "device")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.no_export:
        overrides.append("export=false")
    if args.quiet:
        overrides.append("progress=false")
    try:
        cfg = load_config(args.config, overrides)
        final = run(cfg, log=lambda msg: print(msg, file=sys.stderr))
    except (ValueError, FileNotFoundError, yaml.YAMLError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(final))
    return 1 if str(final.get("export", "")).startswith("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
