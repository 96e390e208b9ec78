"""The top-level experiments/people_models.py: which runs it makes (dry run; the runs themselves are the
people experiment, tested on its own)."""

import contextlib
import importlib.util
import io
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture()
def runner(monkeypatch):
    monkeypatch.chdir(ROOT)  # main() moves into training/; come back afterwards
    spec = importlib.util.spec_from_file_location("people_models", os.path.join(ROOT, "experiments", "people_models.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands(runner, *argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        # --extra takes the rest of the line, so the fixed flags go first
        assert runner.main([argv[0], "--dry-run", "--out", "out/none-such", *argv[1:]]) == 0
    return [line.split() for line in out.getvalue().splitlines()]


def flag(cmd, name):
    return cmd[cmd.index(name) + 1]


def test_grid_is_every_row_label_dim_and_seed_at_one_image_budget(runner):
    cmds = commands(runner, "grid")
    assert len(cmds) == len(runner.ROWS) * 2 * 2 * 3
    for cmd in cmds:
        paper = "--protocol" in cmd
        assert int(flag(cmd, "--steps")) == (640 if paper else 3000)  # 96,000 images either way
        assert flag(cmd, "--label") in ("pose", "caption") and flag(cmd, "--dim") in ("16", "128")
    protocols = {flag(c, "--protocol") for c in cmds if "--protocol" in c}
    assert protocols == {"paper_binary", "paper_dense", "log_ratio_first"}
    assert not any(os.path.isabs(p) for c in cmds for p in c if "/" in p and p != c[0])  # cards name no local path


def test_shipped_are_the_binary_defaults_and_the_log_ratio_models_and_extra_flags_reach_every_run(runner):
    lines = commands(runner, "shipped")
    cmds = [c for c in lines if "dmlkit.experiments.people" in c]
    spreads = [c for c in lines if "dmlkit.experiments.score_spread" in c]
    assert len(lines) == len(cmds) + len(spreads) and len(cmds) == 8  # then every card's score section
    assert sorted(flag(c, "--model") for c in spreads) == sorted(flag(c, "--export") for c in cmds)
    assert all(flag(c, "--card") == flag(c, "--model").replace(".safetensors", ".md") for c in spreads)
    assert all(flag(c, "--queries") == "8000:10000" and flag(c, "--gallery") == "10000:18000" for c in spreads)
    small = commands(runner, "shipped", "--count", "300", "--split", "200", "40", "60")
    assert {(flag(c, "--queries"), flag(c, "--gallery")) for c in small if "--card" in c} == {("200:240", "240:300")}
    exports = {os.path.basename(flag(c, "--export")): (flag(c, "--loss"), flag(c, "--dim")) for c in cmds}
    assert exports == {
        "pose-binary-d128.safetensors": ("binary_triplet", "128"),
        "caption-binary-d128.safetensors": ("binary_triplet", "128"),
        "caption-logratio-d128.safetensors": ("log_ratio", "128"), "caption-logratio-d16.safetensors": ("log_ratio", "16"),
        "pose-logratio-d128.safetensors": ("log_ratio", "128"), "pose-logratio-d16.safetensors": ("log_ratio", "16"),
        "caption-logratio-resnet112-d128.safetensors": ("log_ratio", "128"),
        "pose-logratio-resnet112-d128.safetensors": ("log_ratio", "128")}
    resnet = {flag(c, "--label"): c for c in cmds if "--arch" in c}
    assert sorted(resnet) == ["caption", "pose"] and all(flag(c, "--crop") == "112" for c in resnet.values())
    assert (flag(resnet["pose"], "--steps"), flag(resnet["caption"], "--steps")) == ("6000", "6000")
    assert (flag(resnet["pose"], "--width"), "--width" in resnet["caption"]) == ("16", False)  # caption: width 32
    assert all(flag(c, "--data").endswith("-160px") for c in resnet.values())  # crops need people larger than 64 px
    assert [flag(c, "--crop") for c in spreads if "--crop" in c] == ["112", "112"]  # their scores are of person crops
    resnet = list(resnet.values())
    assert all(flag(c, "--steps") == "3000" and flag(c, "--seed") == "0" for c in cmds if c not in resnet)
    assert not any("--device" in c for c in cmds)  # the CPU unless asked
    assert all(flag(c, "--device") == "cuda" for c in commands(runner, "shipped", "--device", "cuda")
               if "dmlkit.experiments.people" in c)
    cmds = commands(runner, "grid", "--rows", "paper_binary", "--seeds", "0", "--images", "1500",
                    "--extra", "--arch", "resnet", "--crop", "112")
    assert len(cmds) == 4 and all(flag(c, "--arch") == "resnet" and flag(c, "--steps") == "10" for c in cmds)


def test_a_split_larger_than_the_data_is_refused(runner, capsys):
    assert runner.main(["grid", "--count", "100", "--dry-run"]) == 1
    assert "needs 18000 people" in capsys.readouterr().err
