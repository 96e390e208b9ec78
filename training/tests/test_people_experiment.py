"""The pose-aware embedder experiment: metrics from label-distance matrices and a tiny training run."""

import numpy as np
import pytest

from dmlkit.data.people import pose_distance, sample_person
from dmlkit.evaluation import graded_metrics
from dmlkit.experiments import people
from dmlkit.experiments.people_labels import CaptionLabels, PoseLabels


def test_graded_metrics_from_distances_equal_the_library_for_euclidean_labels():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(15, 4)), rng.normal(size=(60, 4))
    yq, yg = rng.normal(size=(15, 3)), rng.normal(size=(60, 3))
    label_d = np.linalg.norm(yq[:, None] - yg[None], axis=-1)
    ours = people.graded_metrics_from_distances(q, g, label_d, ks=(5, 10), top=(1, 5))
    ref = graded_metrics(q, yq, g, yg, ks=(1, 5, 10))
    for key in ("ndcg@5", "ndcg@10", "label_distance@1", "label_distance@5"):
        assert abs(ours[key] - ref[key]) < 1e-12, key


def test_neighbours_are_the_nearest_poses():
    kps = np.stack([sample_person(np.random.default_rng([3, i]), 32).keypoints for i in range(12)])
    nn = PoseLabels(kps).neighbours(3, chunk=5)
    for i in range(12):
        d = [pose_distance(kps[i], kps[j]) if j != i else np.inf for j in range(12)]
        assert sorted(d)[:3] == [d[j] for j in nn[i]]


@pytest.fixture(scope="module")
def tiny():
    samples = [sample_person(np.random.default_rng([5, i]), 64) for i in range(24)]
    return np.stack([s.image for s in samples]), np.stack([s.keypoints for s in samples])


@pytest.mark.parametrize("loss", people.LOSSES)
def test_tiny_training_run_gives_unit_embeddings(tiny, loss):
    images, kps = tiny
    model, info = people.train(images, PoseLabels(kps), dim=8, steps=2, seed=0, batch=10, k=3, loss=loss,
                               width=8, log=lambda m: None)
    assert np.isfinite(info["final_loss"])
    e = people.embed(model, images[:5])
    assert e.shape == (5, 8) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)


def test_caption_labels_are_euclidean_and_train(tiny):
    images, _ = tiny
    v = np.random.default_rng(1).normal(size=(24, 6))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    labels = CaptionLabels(v)
    d = labels.distances([0, 3, 5], [1, 2])
    assert np.allclose(d, np.linalg.norm(v[[0, 3, 5]][:, None] - v[[1, 2]][None], axis=-1))
    nn = labels.neighbours(2)
    full = np.linalg.norm(v[:, None] - v[None], axis=-1) + np.diag(np.full(24, np.inf))
    assert np.array_equal(nn, np.argsort(full, axis=1, kind="stable")[:, :2])
    model, info = people.train(images, labels, dim=4, steps=2, seed=0, batch=10, k=3, width=8, log=lambda m: None)
    assert np.isfinite(info["final_loss"])
    with pytest.raises(ValueError, match="labels"):
        people.train(images[:5], labels, dim=4, steps=1, seed=0, log=lambda m: None)


def test_caption_mean_label_averages_each_persons_captions(tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    captions = {"annotations": [{"image_id": 7, "caption": "a"}, {"image_id": 3, "caption": "b"},
                                {"image_id": 7, "caption": "c"}]}
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(captions))
    table = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.6, 0.8]}
    seen = []

    def fake(texts, model_dir):
        seen.append(list(texts))
        return np.array([table[t] for t in texts])

    monkeypatch.setattr(people, "embed_captions", fake)
    records = [SimpleNamespace(image_id=3), SimpleNamespace(image_id=7)]
    mean = people.caption_label_vectors(records, str(path), "mean", "unused")
    expected = np.array([1.6, 0.8]) / np.linalg.norm([1.6, 0.8])
    assert np.allclose(mean, [[0.0, 1.0], expected]) and seen[-1] == ["b", "a", "c"]
    first = people.caption_label_vectors(records, str(path), "first", "unused")
    assert np.allclose(first, [[0.0, 1.0], [1.0, 0.0]]) and seen[-1] == ["b", "a"]


def test_several_anchor_groups_train(tiny):
    images, kps = tiny
    model, info = people.train(images, PoseLabels(kps), dim=8, steps=2, seed=0, batch=12, k=3, width=8,
                               groups=2, log=lambda m: None)
    assert np.isfinite(info["final_loss"])


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        people.make_loss("hinge", 5)


def test_command_line_trains_evaluates_exports_and_writes_a_card(tmp_path):
    from safetensors import safe_open

    data, model = tmp_path / "data", tmp_path / "pose.safetensors"
    argv = ["--data", str(data), "--count", "30", "--train", "16", "--queries", "4", "--gallery", "10",
            "--steps", "2", "--batch", "8", "--dim", "8", "--width", "8", "--out", str(tmp_path / "run"),
            "--export", str(model)]
    assert people.main(argv) == 0
    with safe_open(str(model), "np") as f:
        meta = f.metadata()
    assert meta["people.loss"] == "log_ratio" and "dml.fingerprint" in meta
    card = (tmp_path / "pose.md").read_text()
    assert meta["dml.fingerprint"] in card and "--export" in card and "| label-space oracle |" in card
    assert people.main(argv[:2] + ["--train", "100"]) == 1  # not enough people
    from dmlkit.experiments.people_results import retrieval_examples

    retrieval_examples(str(tmp_path / "run"), str(tmp_path / "ex.png"), n=2, top=3, scale=1)
    from PIL import Image

    assert Image.open(tmp_path / "ex.png").size == (4 * 64 + 8, 2 * 64)


def test_results_table_averages_seeds_and_keeps_bounds_apart(tmp_path):
    import json

    from dmlkit.experiments import people_results

    cols = people_results.COLUMNS
    for seed, value in ((0, 0.5), (1, 0.7)):
        run = tmp_path / f"r{seed}"
        run.mkdir()
        metrics = {"log_ratio": {c: value for c in cols}, "random-init CNN": {c: 0.1 for c in cols},
                   "label-space oracle": {c: 1.0 for c in cols}}
        ks = [1, 2]
        curves = {name: {"k": ks, "ndcg": [value, value], "label_distance": [1 - value, 1 - value]}
                  for name in metrics}
        (run / "metrics.json").write_text(json.dumps({"config": {"label": "pose", "loss": "log_ratio", "dim": 16,
                                                                 "seed": seed}, "metrics": metrics, "curves": curves}))
    grouped = tmp_path / "g0"
    grouped.mkdir()
    (grouped / "metrics.json").write_text(json.dumps({"config": {"label": "pose", "loss": "log_ratio", "dim": 16,
                                                                 "seed": 0, "groups": 4},
                                                      "metrics": {"log_ratio": {c: 0.9 for c in cols}},
                                                      "curves": {"log_ratio": curves["log_ratio"]}}))
    runs = people_results.load_runs([str(tmp_path / "r0"), str(tmp_path / "r1"), str(tmp_path / "none")])
    for seed, rho in ((0, 0.2), (1, 0.4)):
        (tmp_path / f"r{seed}" / "structure.json").write_text(json.dumps(
            {"log_ratio": {"spearman_all": rho, "spearman_near100": rho / 2}, "raw pixels (16x16)": {
                "spearman_all": 0.1, "spearman_near100": 0.0}}))
    runs = people_results.load_runs([str(tmp_path / "r0"), str(tmp_path / "r1")])
    rho_rows = people_results.table(runs, "pose", "structure", ["spearman_all", "spearman_near100"]).splitlines()
    assert rho_rows[2] == "| log-ratio | 16 | 2 | 0.3000 ± 0.1414 | 0.1500 ± 0.0707 |"
    assert rho_rows[3].startswith("| raw pixels (16x16) | - | 2 | 0.1000 ± 0.0000 |")
    grouped_row = people_results.table(people_results.load_runs([str(grouped)]), "pose").splitlines()[2]
    assert grouped_row.startswith("| log-ratio, 4 anchor groups per batch | 16 | 1 | 0.9000 |")
    adam = tmp_path / "a0"  # a protocol trained with another optimiser is a row of its own
    adam.mkdir()
    name = "protocol:paper_binary"
    (adam / "metrics.json").write_text(json.dumps({"config": {"label": "pose", "loss": name, "dim": 16, "seed": 0,
                                                              "protocol_optimizer": "adam_cosine",
                                                              "optimizer": "adam_cosine"},
                                                   "metrics": {name: {c: 0.8 for c in cols}},
                                                   "curves": {name: curves["log_ratio"]}}))
    adam_row = people_results.table(people_results.load_runs([str(adam)]), "pose").splitlines()[2]
    assert adam_row.startswith("| paper protocol: binary triplet (5 of top 30, margin 0.2 sq., mean), optimizer "
                               "adam_cosine | 16 | 1 | 0.8000 |")
    text = people_results.table(runs, "pose")
    row = next(line for line in text.splitlines() if line.startswith("| log-ratio"))
    assert "| 16 | 2 |" in row and "0.6000 ± 0.1414" in row  # mean and sample std of 0.5 and 0.7
    assert any(line.startswith("| label-space oracle | - | 2 |") for line in text.splitlines())
    people_results.plot_curves(runs, "pose", str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert people_results.main([str(tmp_path / "none")]) == 1


def test_structure_spearman_equals_the_library_and_is_one_for_a_perfect_embedding():
    from dmlkit.experiments.people_structure import structure_metrics

    rng = np.random.default_rng(3)
    q, g = rng.normal(size=(12, 4)), rng.normal(size=(150, 4))
    yq, yg = rng.normal(size=(12, 3)), rng.normal(size=(150, 3))
    label_d = np.linalg.norm(yq[:, None] - yg[None], axis=-1)
    ours = structure_metrics(q, g, label_d, near=100)
    assert abs(ours["spearman_all"] - graded_metrics(q, yq, g, yg, ks=(1,))["spearman"]) < 1e-12
    perfect = structure_metrics(yq, yg, label_d, near=20)
    assert perfect["spearman_all"] > 1 - 1e-12 and perfect["spearman_near20"] > 1 - 1e-12
    # reversing the order among the near items only: the global order barely moves, the near one flips
    near = np.argsort(label_d, axis=1)[:, :20]
    flipped = label_d.copy()
    for row in range(12):
        flipped[row, near[row]] = label_d[row, near[row]][::-1]
    both = structure_metrics(yq, yg, flipped, near=20)
    assert both["spearman_near20"] < -1 + 1e-12 and both["spearman_all"] > 0.9


def test_prefetched_batches_equal_the_serial_loop():
    # the GPU loop builds batches in a background thread: same batches, same order, same random draws
    def run(ahead):
        rng = np.random.default_rng(3)
        sampler = [np.arange(i, i + 4) for i in range(0, 40, 4)]
        return [b for b in people._prefetched(lambda idx: idx * 10 + rng.random(), sampler, ahead)]

    serial, ahead = run(0), run(2)
    assert len(serial) == len(ahead) == 10
    for a, b in zip(serial, ahead):
        assert np.array_equal(a, b)
