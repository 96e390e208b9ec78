"""`dml gallery` against the Python side as the reference.

A small synthetic people set (the shipped generator) is built into a gallery with the shipped pose model; then
- search by pose ranks items exactly as `dmlkit.data.people.distance.pose_distance` does (same distances too),
- search by key and by the same image returns the item itself first,
- eval's leave-one-out metrics equal a NumPy computation over the embeddings stored in SQLite,
- bad input exits 1 with one line on stderr.
"""
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import spearmanr

REPO = pathlib.Path(__file__).resolve().parents[2]
DML = os.environ.get("DML_BIN", str(REPO / ".build" / "debug" / "dml"))
MODEL = REPO / "models" / "pose-logratio-d128.safetensors"
sys.path.insert(0, str(REPO / "training"))
from dmlkit.data.people.coco import load_coco_keypoints  # noqa: E402
from dmlkit.data.people.distance import PoseDistanceError, pose_distance  # noqa: E402

N = 60


def text_model():
    root = REPO / "models" / "text"
    for d in [root, *sorted(root.glob("*"))] if root.is_dir() else []:
        if (d / "config.json").exists():
            return d
    return None


def dml(*args, check=True):
    result = subprocess.run([DML, *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dml {' '.join(map(str, args))} failed: {result.stderr}")
    return result


def fails(*args, contains=None):
    result = dml(*args, check=False)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dml: "), result.stderr
    if contains:
        assert contains in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery-cli")
    people = root / "people"
    command = [sys.executable, "-m", "dmlkit.data.people.generate", "--out", people, "--count", N, "--seed", 11,
               "--size", 64, "--quiet"]
    subprocess.run(list(map(str, command)), check=True, capture_output=True, cwd=REPO / "training")
    gallery = root / "gallery"
    args = ["gallery", "build", gallery, "--coco", people / "person_keypoints.json", "--images", people / "images",
            "--model", MODEL, "--batch", 16]
    text = text_model()
    if text is not None:
        args += ["--captions", people / "captions.json", "--text-model", text]
    dml(*args)
    records = load_coco_keypoints(str(people / "person_keypoints.json"))
    return root, gallery, people, records, text


def search(gallery, *args):
    return json.loads(dml("gallery", "search", gallery, *args, "--json").stdout)


def python_ranking(query, records, mirror=False):
    ranked = []
    for i, r in enumerate(records):
        try:
            ranked.append((pose_distance(query, r.keypoints, mirror=mirror), i, pathlib.Path(r.file_name).stem))
        except PoseDistanceError:
            continue
    return sorted(ranked)


@pytest.mark.parametrize("mirror", [False, True])
def test_pose_search_ranks_exactly_by_the_python_pose_distance(built, tmp_path, mirror):
    _, gallery, _, records, _ = built
    rng = np.random.default_rng(5)
    for q in [0, 17]:
        query = records[q].keypoints.copy()
        query[:, :2] += rng.normal(0, 1.5, (17, 2)) * (query[:, 2:] > 0)  # a pose that is not in the gallery
        path = tmp_path / f"pose{q}.json"
        path.write_text(json.dumps(query.tolist()))  # 17 triples
        hits = search(gallery, "--pose", path, "-k", N, *(["--mirror"] if mirror else []))
        expected = python_ranking(query, records, mirror)
        assert [h["key"] for h in hits] == [key for _, _, key in expected]
        np.testing.assert_allclose([h["pose_distance"] for h in hits], [d for d, _, _ in expected], rtol=0, atol=1e-12)
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(records[3].keypoints.reshape(-1).tolist()))  # 51 numbers
    assert search(gallery, "--pose", flat, "-k", 1)[0]["key"] == pathlib.Path(records[3].file_name).stem


def test_key_and_example_find_the_item_itself_first(built):
    _, gallery, people, records, _ = built
    key = pathlib.Path(records[7].file_name).stem
    by_key = search(gallery, "--key", key, "-k", 5)
    assert by_key[0]["key"] == key and abs(by_key[0]["score"] - 1) < 1e-5 and by_key[0]["pose_distance"] == 0
    assert [h["rank"] for h in by_key] == [1, 2, 3, 4, 5]
    by_example = search(gallery, "--example", people / "images" / records[7].file_name, "--model", MODEL, "-k", 5)
    assert [h["key"] for h in by_example] == [h["key"] for h in by_key]
    np.testing.assert_allclose([h["score"] for h in by_example], [h["score"] for h in by_key], atol=1e-5)


def test_caption_search_finds_the_item_with_that_caption(built):
    _, gallery, _, _, text = built
    if text is None:
        pytest.skip("no text model in models/text (make text-model)")
    con = sqlite3.connect(gallery / "gallery.sqlite")
    key, caption = con.execute("SELECT key, caption FROM items WHERE id = 9").fetchone()
    con.close()
    hits = search(gallery, "--caption", caption, "--text-model", text, "-k", 3)
    assert hits[0]["key"] == key and hits[0]["caption"] == caption and abs(hits[0]["score"] - 1) < 1e-4
    fails("gallery", "search", gallery, "--caption", "   ", "--text-model", text, contains="empty caption")


def test_info_reports_items_spaces_and_current_indexes(built):
    _, gallery, _, _, text = built
    info = json.loads(dml("gallery", "info", gallery, "--json").stdout)
    assert info["count"] == N
    assert sorted(s["name"] for s in info["spaces"]) == (["caption", "image"] if text else ["image"])
    assert all(i["current"] for i in info["indexes"]) and {i["name"] for i in info["indexes"]} >= {"image", "pose"}


def test_eval_equals_numpy_over_the_stored_embeddings(built):
    _, gallery, _, records, _ = built
    report = json.loads(dml("gallery", "eval", gallery, "--queries", N, "--json").stdout)
    con = sqlite3.connect(gallery / "gallery.sqlite")
    rows = con.execute("SELECT e.vector, i.pose FROM embeddings e JOIN items i ON i.id = e.item_id "
                       "WHERE e.space = 'image' ORDER BY i.id").fetchall()
    con.close()
    x = np.stack([np.frombuffer(v, dtype="<f4") for v, _ in rows]).astype(np.float64)
    poses = [np.array([float(t) for t in p.split(",")]).reshape(17, 3) for _, p in rows]
    ks = [1, 10, 50]
    ndcg, mean, floor, rhos, counted = {k: 0.0 for k in ks}, {k: 0.0 for k in ks}, {k: 0.0 for k in ks}, [], 0
    for q in range(len(rows)):
        refs = []
        for j in range(len(rows)):
            if j == q:
                continue
            try:
                refs.append((np.linalg.norm(x[q] - x[j]), j, pose_distance(poses[q], poses[j])))
            except PoseDistanceError:
                continue
        if len(refs) < max(ks):
            continue
        refs.sort()
        d = np.array([r[2] for r in refs])
        ideal = np.sort(d)
        disc = 1 / np.log2(np.arange(len(d)) + 2)
        for k in ks:
            ndcg[k] += (disc[:k] / (1 + d[:k])).sum() / (disc[:k] / (1 + ideal[:k])).sum()
            mean[k] += d[:k].mean()
            floor[k] += ideal[:k].mean()
        rhos.append(spearmanr([r[0] for r in refs], d).correlation)
        counted += 1
    assert report["queries"] == counted and report["skipped_queries"] == N - counted
    for k in ks:
        assert abs(report["ndcg"][str(k)] - ndcg[k] / counted) < 1e-6
        assert abs(report["mean_pose_distance"][str(k)] - mean[k] / counted) < 1e-6
        assert abs(report["ideal_mean_pose_distance"][str(k)] - floor[k] / counted) < 1e-6
    assert abs(report["spearman"] - np.mean(rhos)) < 1e-6


def test_bad_input_exits_1_with_one_line(built, tmp_path):
    root, gallery, people, records, _ = built
    fails("gallery", "search", gallery, "--key", "no-such-key", "-k", 3, contains="no-such-key")
    no_hips = records[0].keypoints.copy()
    no_hips[11:13] = 0
    (tmp_path / "nohips.json").write_text(json.dumps(no_hips.tolist()))
    fails("gallery", "search", gallery, "--pose", tmp_path / "nohips.json", "-k", 3, contains="hip")
    (tmp_path / "short.json").write_text("[1, 2, 3]")
    fails("gallery", "search", gallery, "--pose", tmp_path / "short.json", "-k", 3)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    fails("gallery", "search", gallery, "--example", tmp_path / "corrupt.png", "--model", MODEL, "-k", 3, contains="corrupt.png")
    fails("gallery", "search", tmp_path / "absent", "--key", "000001", "-k", 3, contains="no gallery")
    assert not (tmp_path / "absent").exists()
    fails("gallery", "info", tmp_path / "absent")
    fails("gallery", "eval", tmp_path / "absent", "--queries", 5)
    fails("gallery", "search", gallery, "-k", 3, contains="exactly one")
    # A gallery whose image space came from another model is refused, not searched.
    other = tmp_path / "other"
    shutil.copytree(gallery, other)
    con = sqlite3.connect(other / "gallery.sqlite")
    con.execute("UPDATE spaces SET fingerprint = 'sha256:another-model' WHERE name = 'image'")
    con.commit()
    con.close()
    fails("gallery", "search", other, "--example", people / "images" / records[0].file_name, "--model", MODEL, "-k", 3,
          contains="another-model")
    # Building over an existing gallery is refused (it would mix two builds).
    fails("gallery", "build", gallery, "--coco", people / "person_keypoints.json", "--images", people / "images",
          "--model", MODEL, contains="already holds")
    # A corrupt image stops a build with one line.
    bad_images = tmp_path / "images"
    shutil.copytree(people / "images", bad_images)
    (bad_images / records[2].file_name).write_bytes(b"not an image at all")
    fails("gallery", "build", tmp_path / "g2", "--coco", people / "person_keypoints.json", "--images", bad_images,
          "--model", MODEL, contains=records[2].file_name)
