import csv
import json
import sys
import types

import numpy as np
import pytest
import torch

from dmlkit.config import DEFAULTS, load_config, merge, parse_override
from dmlkit.train import main, run


def small(tmp_path, **override):
    cfg = merge(DEFAULTS, {"epochs": 2, "out_dir": str(tmp_path / "run"), "progress": False, "export": False,
                           "eval": {"every": 1, "ks": [1, 4]}})
    return merge(cfg, override)


def test_run_writes_logs_checkpoints_and_plots(tmp_path):
    final = run(small(tmp_path))
    out = tmp_path / "run"
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert json.load(open(out / "metrics.json"))[-1]["map@r"] == pytest.approx(final["map@r"])
    assert 0 < final["recall@1"] <= 1
    assert 0 < final["map@r"] <= final["r_precision"] + 1e-12  # AP@R <= R-precision since precision <= 1
    for name in ("loss.png", "metrics.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert state["epoch"] == 2 and "head.weight" in state["model"]
    assert (out / "checkpoints" / "best.pt").exists()


def test_training_lowers_the_loss_and_is_repeatable(tmp_path):
    cfg = small(tmp_path, epochs=4, out_dir=None, eval={"every": 0, "ks": [1]})
    a = run(cfg)
    b = run(cfg)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6) and a["map@r"] == pytest.approx(b["map@r"])
    first = run(merge(cfg, {"epochs": 1}))
    assert a["loss"] < first["loss"]


@pytest.mark.parametrize("loss", ["triplet", "contrastive", "multi_similarity", "proxy_anchor"])
def test_baseline_losses_train(tmp_path, loss):
    final = run(small(tmp_path, epochs=1, out_dir=None, loss={"name": loss, "params": {}}))
    assert np.isfinite(final["loss"]) and final["recall@1"] > 0.2


def test_proxy_anchor_proxies_are_trained(tmp_path):
    from dmlkit.builders import build_data, build_loss, build_model, build_optimizer

    cfg = small(tmp_path, loss={"name": "proxy_anchor", "params": {}})
    data = build_data(cfg)
    model = build_model(cfg, 64)
    step_loss = build_loss(cfg, model, data)
    proxies = step_loss.module.proxies
    assert tuple(proxies.shape) == (5, 32)
    opt, _ = build_optimizer(cfg, model, step_loss.module.parameters())
    before = proxies.detach().clone()
    step_loss(model, data.x_train[:40], data.y_train[:40]).backward()
    opt.step()
    assert not torch.equal(before, proxies.detach())


def test_intra_class_and_multi_head_configs_train(tmp_path):
    icr = small(tmp_path, epochs=1, out_dir=None, intra_class={"weight": 1.0, "levels": 2, "step": 0.1, "margin": 0.2})
    assert np.isfinite(run(icr)["loss"])
    mh = small(tmp_path, epochs=1, out_dir=None, model={"name": "multihead_mlp", "head_dims": [8, 8]},
               loss={"name": "multihead_rll", "params": {}})
    assert np.isfinite(run(mh)["loss"])


def test_continuous_labels_with_dense_triplet_batches(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(size=(120, 2)).astype(np.float32)
    x = np.concatenate([y, np.sin(y), rng.normal(scale=0.1, size=(120, 4))], 1).astype(np.float32)
    paths = {}
    for name, arr in (("train_x", x[:80]), ("train_y", y[:80]), ("test_x", x[80:]), ("test_y", y[80:])):
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], arr)
    for loss in ("log_ratio", "dense_triplet", "binary_triplet"):
        cfg = small(tmp_path, epochs=2, out_dir=None, batch_size=16, data={"name": "npy", "continuous": True, **paths},
                    sampler={"name": "dense_triplet", "k": 5}, loss={"name": loss, "params": {}},
                    eval={"every": 1, "ks": [1, 5]})
        final = run(cfg)
        assert 0 < final["ndcg@5"] <= 1 and np.isfinite(final["loss"])


def test_export_hook_calls_export_model_or_skips(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("dmlkit.export")
    fake.export_model = lambda module, example, path, metadata=None, **kw: calls.append(
        (module, tuple(example.shape), path, kw))
    monkeypatch.setitem(sys.modules, "dmlkit.export", fake)
    import dmlkit

    monkeypatch.setattr(dmlkit, "export", fake, raising=False)
    final = run(small(tmp_path, epochs=1, export=True))
    assert final["export"] == "exported"
    assert calls and calls[0][1] == (1, 64) and calls[0][2].endswith("model.safetensors")
    assert calls[0][3] == {"input_scale": 1 / 16}  # the digits loader's scaling is stored, never implicit
    monkeypatch.setitem(sys.modules, "dmlkit.export", None)  # as if the module did not exist
    monkeypatch.delattr(dmlkit, "export", raising=False)
    messages = []
    final = run(small(tmp_path, epochs=1, export=True), log=messages.append)
    assert final["export"] == "skipped" and any("not available" in m for m in messages)


def test_config_overrides_and_errors(tmp_path, capsys):
    assert parse_override("loss.params.margin=0.3") == {"loss": {"params": {"margin": 0.3}}}
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epochs: 3\nloss: {name: triplet}\n")
    cfg = load_config(str(cfg_file), ["loss.params.margin=0.2", "model.dim=16"])
    assert cfg["epochs"] == 3 and cfg["loss"] == {"name": "triplet", "params": {"margin": 0.2}}
    assert cfg["model"]["hidden"] == [128] and cfg["model"]["dim"] == 16
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    assert main(["--config", str(bad), "--quiet"]) == 1
    assert "unknown config keys ['epochz']" in capsys.readouterr().err
    assert main(["--epochs", "0", "--quiet", "--no-export", "--out", str(tmp_path / "z")]) == 1
    assert "epochs must be >= 1" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1\n")
    assert main(["--config", str(broken), "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["--loss", "log_ratio", "--epochs", "1", "--quiet", "--no-export", "--out", str(tmp_path / "x")]) == 1
    assert "does not take class labels" in capsys.readouterr().err


def test_cli_end_to_end(tmp_path, capsys):
    assert main(["--config", str(_repo_config("digits_rll.yaml")),
                 "--epochs", "1", "--out", str(tmp_path / "cli"), "--quiet", "--no-export"]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["epoch"] == 1 and "map@r" in final


def _repo_config(name):
    import os

    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", name)
