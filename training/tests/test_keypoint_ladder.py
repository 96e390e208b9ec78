import json

import numpy as np
import pytest

from dmlkit.data.people import generate_dataset
from dmlkit.experiments import keypoint_ladder, people_results


def test_rung_inputs_keep_the_rung_joints_relative_to_the_box():
    k = np.zeros((1, 17, 3))
    k[0, :, 0], k[0, :, 1] = np.arange(17) + 10.0, 20.0
    k[0, :, 2] = 2
    k[0, 3, 2], k[0, 4, 2] = 1, 0  # one occluded, one unlabelled joint
    box = np.array([[10.0, 10.0, 16.0, 20.0]])  # centre (18, 20), larger side 20
    labelled = keypoint_ladder.rung_inputs(k, box, 1, 0.0)
    assert labelled.shape == (1, 51) and labelled.dtype == np.float32
    xy, kept = labelled[0, :34].reshape(17, 2), labelled[0, 34:]
    assert xy[0].tolist() == pytest.approx([(10 - 18) / 20, 0.0]) and xy[3, 0] == pytest.approx((13 - 18) / 20)
    assert kept.tolist() == [1.0] * 4 + [0.0] + [1.0] * 12 and xy[4].tolist() == [0.0, 0.0]
    visible = keypoint_ladder.rung_inputs(k, box, 2, 0.0)
    assert visible[0, 34 + 3] == 0 and visible[0, 6:8].tolist() == [0.0, 0.0]
    noisy = keypoint_ladder.rung_inputs(k, box, 2, 1.5, seed=4)
    moved = (noisy[0, :34] - visible[0, :34]) * 20  # back in pixels
    kept_xy = np.repeat(visible[0, 34:] > 0, 2)
    assert np.all(moved[~kept_xy] == 0) and 0.5 < np.std(moved[kept_xy]) < 3.0
    assert np.array_equal(noisy, keypoint_ladder.rung_inputs(k, box, 2, 1.5, seed=4))


def test_a_small_ladder_trains_every_row_and_tabulates(tmp_path):
    data = str(tmp_path / "people")
    generate_dataset(data, count=220, seed=3, size=32, captions_per_image=1)  # the paper batch: 150
    out = tmp_path / "ladder"
    args = ["--data", data, "--out", str(out), "--split", "180", "16", "24", "--images", "300", "--rungs",
            "labelled", "visible+noise3px"]
    assert keypoint_ladder.main(args) == 0
    runs = sorted(p.name for p in out.iterdir())
    assert len(runs) == 2 * len(keypoint_ladder.ROWS)
    result = json.loads((out / "labelled-paper_binary-d16-s0" / "metrics.json").read_text())
    assert result["config"]["loss"] == "protocol:paper_binary"
    m = result["metrics"]["protocol:paper_binary"]
    assert 0 < m["ndcg@10"] <= 1 and np.isfinite(m["label_distance@1"])
    table = people_results.table(people_results.load_runs([str(out / r) for r in runs]), "pose")
    assert "keypoint MLP (visible+noise3px)" in table and "paper protocol: log-ratio" in table
    assert keypoint_ladder.main(args) == 0  # finished runs are skipped, nothing rewritten
    assert json.loads((out / "labelled-paper_binary-d16-s0" / "metrics.json").read_text()) == result
    assert keypoint_ladder.main(["--data", data, "--out", str(out), "--split", "200", "16", "24"]) == 1
