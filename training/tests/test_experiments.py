import json

from dmlkit.experiments import digits


def test_every_method_shares_the_protocol_except_the_loss():
    configs = {m: digits.method_config(m, seed=3, epochs=7) for m in digits.METHODS}
    for cfg in configs.values():
        assert cfg["seed"] == 3 and cfg["epochs"] == 7 and cfg["out_dir"] is None
        assert cfg["model"] == configs["RLL"]["model"] and cfg["sampler"] == configs["RLL"]["sampler"]
        assert cfg["optimizer"] == configs["RLL"]["optimizer"]
    assert configs["RLL + intra-class ranking"]["intra_class"]["weight"] > 0
    assert configs["RLL"]["intra_class"] is None


def test_digits_experiment_prints_a_table(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert digits.main(["--seeds", "0", "--epochs", "1", "--methods", "RLL", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| RLL |" in text and "raw pixels" in text and "untrained MLP" in text
    saved = json.load(open(out))
    assert [r["seed"] for r in saved["results"]["RLL"]] == [0]
    assert 0.5 < saved["raw_pixels"]["recall@1"] <= 1
