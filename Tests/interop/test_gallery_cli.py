"""`dml gallery` against the Python side as the reference.

A small synthetic people set (the shipped generator) is built into a gallery with the shipped pose model; then
- search by pose ranks items exactly as `dmlkit.data.people.distance.pose_distance` does (same distances too),
- search by key and by the same image returns the item itself first,
- eval's leave-one-out metrics equal a NumPy computation over the embeddings stored in SQLite,
- range (--within) and weighted combined searches equal NumPy/Python brute force over every item, using the
  calibration map stored in SQLite,
- add/remove change store and indexes together; a killed add and a full disk lose nothing,
- bad input exits 1 with one line on stderr and changes nothing.
"""
import json
import os
import pathlib
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import faiss
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


def stored_pose(value):
    """A pose as the store holds it: 51 little-endian float64 (schema 2), or "x,y,v,..." text (schema 1)."""
    if isinstance(value, bytes):
        return np.frombuffer(value, dtype="<f8").reshape(17, 3)
    return np.array([float(t) for t in value.split(",")]).reshape(17, 3)


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


def test_a_schema_1_gallery_with_text_poses_is_converted_and_searches_the_same(built, tmp_path):
    _, original, _, records, _ = built
    gallery = tmp_path / "v1"
    shutil.copytree(original, gallery)
    con = sqlite3.connect(gallery / "gallery.sqlite")
    blobs = dict(con.execute("SELECT id, pose FROM items WHERE pose IS NOT NULL"))
    assert blobs and all(isinstance(b, bytes) for b in blobs.values())
    with con:  # as schema 1 wrote them: shortest round-trip decimal text
        for i, b in blobs.items():
            con.execute("UPDATE items SET pose = ? WHERE id = ?", (",".join(repr(float(v)) for v in stored_pose(b).reshape(-1)), i))
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    con.close()
    before = json.loads(dml("gallery", "info", gallery, "--json").stdout)  # read-only: nothing converted
    query = tmp_path / "pose.json"
    query.write_text(json.dumps(records[4].keypoints.tolist()))
    hits = search(gallery, "--pose", query, "-k", 20)  # read-only: reads the text poses, converts nothing
    assert hits == search(original, "--pose", query, "-k", 20)
    con = sqlite3.connect(gallery / "gallery.sqlite")
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    con.close()
    dml("gallery", "calibrate", gallery)  # opens for writing: converts
    assert search(gallery, "--pose", query, "-k", 20) == hits
    con = sqlite3.connect(gallery / "gallery.sqlite")
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
    assert dict(con.execute("SELECT id, pose FROM items WHERE pose IS NOT NULL")) == blobs  # bit for bit
    con.close()
    after = json.loads(dml("gallery", "info", gallery, "--json").stdout)
    assert after["indexes"] == before["indexes"] and all(i["current"] for i in after["indexes"])  # no rebuild needed


def test_key_and_example_find_the_item_itself_first(built):
    _, gallery, people, records, _ = built
    key = pathlib.Path(records[7].file_name).stem
    by_key = search(gallery, "--key", key, "-k", 5)
    assert by_key[0]["key"] == key and abs(by_key[0]["score"] - 1) < 1e-5 and by_key[0]["pose_distance"] == 0
    assert [h["rank"] for h in by_key] == [1, 2, 3, 4, 5]
    # Items are embedded from their person crop: the same crop of the same file is the same query.
    crop = by_key[0]["crop"]
    assert crop and len(crop.split(",")) == 4
    by_example = search(gallery, "--example", people / "images" / records[7].file_name, "--box", crop, "--model", MODEL, "-k", 5)
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
    assert "integrity" not in info
    assert json.loads(dml("gallery", "info", gallery, "--verify", "--json").stdout)["integrity"] == "ok"


def test_verify_reports_a_damaged_page_in_one_line(built, tmp_path):
    _, original, _, _, _ = built
    gallery = tmp_path / "g"
    shutil.copytree(original, gallery)
    path = gallery / "gallery.sqlite"
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    middle = len(data) // page // 2
    data[middle * page:(middle + 1) * page] = bytes((i * 31 + 7) % 256 for i in range(page))
    path.write_bytes(bytes(data))
    fails("gallery", "info", gallery, "--verify", contains="integrity check failed")


def test_eval_equals_numpy_over_the_stored_embeddings(built):
    _, gallery, _, records, _ = built
    report = json.loads(dml("gallery", "eval", gallery, "--queries", N, "--json").stdout)
    con = sqlite3.connect(gallery / "gallery.sqlite")
    rows = con.execute("SELECT e.vector, i.pose FROM embeddings e JOIN items i ON i.id = e.item_id "
                       "WHERE e.space = 'image' ORDER BY i.id").fetchall()
    con.close()
    x = np.stack([np.frombuffer(v, dtype="<f4") for v, _ in rows]).astype(np.float64)
    poses = [stored_pose(p) for _, p in rows]
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
    fails("gallery", "search", gallery, "-k", 3, contains="at least one")
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


# ---- add / remove, range and combined queries, failures -------------------------------------------------------------


def generate(out, count, seed, prefix):
    """Generated people whose image files (and so keys) start with `prefix`, so they can join the fixture gallery."""
    raw = out.parent / (out.name + "-raw")
    command = [sys.executable, "-m", "dmlkit.data.people.generate", "--out", raw, "--count", count, "--seed", seed,
               "--size", 64, "--quiet"]
    subprocess.run(list(map(str, command)), check=True, capture_output=True, cwd=REPO / "training")
    (out / "images").mkdir(parents=True)
    keypoints = json.loads((raw / "person_keypoints.json").read_text())
    for image in keypoints["images"]:
        shutil.copy(raw / "images" / image["file_name"], out / "images" / (prefix + image["file_name"]))
        image["file_name"] = prefix + image["file_name"]
    (out / "person_keypoints.json").write_text(json.dumps(keypoints))
    shutil.copy(raw / "captions.json", out / "captions.json")
    return out, load_coco_keypoints(str(out / "person_keypoints.json"))


@pytest.fixture(scope="module")
def more(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("more") / "people", 24, 12, "b")


def add_args(gallery, people, text, *extra):
    args = ["gallery", "add", gallery, "--coco", people / "person_keypoints.json", "--images", people / "images",
            "--model", MODEL, *extra]
    if text is not None:
        args += ["--captions", people / "captions.json", "--text-model", text]
    return args


def state(gallery):
    """(items, generation, integrity) read straight from SQLite; every item must have one vector per space."""
    con = sqlite3.connect(gallery / "gallery.sqlite")
    try:
        count = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        generation = int(con.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        spaces = con.execute("SELECT COUNT(*) FROM spaces").fetchone()[0]
        half = con.execute("SELECT COUNT(*) FROM items i WHERE (SELECT COUNT(*) FROM embeddings e WHERE e.item_id = i.id) != ?",
                           (spaces,)).fetchone()[0]
    finally:
        con.close()
    assert half == 0, f"{half} items without all their embeddings"
    return count, generation, integrity


def stored(gallery, space="image"):
    con = sqlite3.connect(gallery / "gallery.sqlite")
    rows = con.execute("SELECT i.key, e.vector, i.pose FROM items i JOIN embeddings e ON e.item_id = i.id "
                       "WHERE e.space = ? ORDER BY i.id", (space,)).fetchall()
    calibration = con.execute("SELECT value FROM meta WHERE key = ?", (f"calibration:{space}",)).fetchone()
    con.close()
    keys = [r[0] for r in rows]
    x = np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float64)
    poses = [stored_pose(r[2]) for r in rows]
    return keys, x, poses, json.loads(calibration[0]) if calibration else None


def calibrated(calibration, distance, knots="knots"):
    """The median map ("knots": estimates) or the range map ("rangeKnots": what --within compares)."""
    knots = calibration[knots]
    return np.interp(distance, [k["embeddingDistance"] for k in knots], [k["poseDistance"] for k in knots])


def cosine_distance(x, q):
    return 1 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))


def test_add_and_remove_change_store_indexes_and_calibration_together(built, more, tmp_path):
    _, original, _, records, text = built
    people, new_records = more
    gallery = tmp_path / "g"
    shutil.copytree(original, gallery)
    report = json.loads(dml(*add_args(gallery, people, text, "--batch", 10, "--json")).stdout)
    assert report["added"] == 24 and report["count"] == N + 24
    info = json.loads(dml("gallery", "info", gallery, "--json").stdout)
    assert info["count"] == N + 24 and all(i["current"] for i in info["indexes"])
    assert info["calibrations"]["image"]["current"] and info["calibrations"]["image"]["generation"] == info["generation"]
    # Pose search over old and new items ranks exactly as the Python distance does.
    query = new_records[3].keypoints
    (tmp_path / "q.json").write_text(json.dumps(query.tolist()))
    hits = search(gallery, "--pose", tmp_path / "q.json", "-k", N + 24)
    assert [h["key"] for h in hits] == [k for _, _, k in python_ranking(query, records + new_records)]
    # The same people again: refused whole, nothing changes; --skip-existing adds none.
    before = state(gallery)
    fails(*add_args(gallery, people, text), contains="already in the gallery")
    assert state(gallery) == before
    again = json.loads(dml(*add_args(gallery, people, text, "--skip-existing", "--json")).stdout)
    assert again["added"] == 0 and again["skipped"] == 24 and state(gallery)[0] == N + 24
    # Remove by --key and --keys-file; an unknown key refuses the whole removal.
    (tmp_path / "keys.txt").write_text("b000003\n\n b000004 \n")
    fails("gallery", "remove", gallery, "--key", "b000001", "--key", "no-such-key", contains="no-such-key")
    assert state(gallery)[0] == N + 24
    removed = json.loads(dml("gallery", "remove", gallery, "--key", "b000001", "--key", "b000002", "--keys-file",
                             tmp_path / "keys.txt", "--json").stdout)
    assert removed["removed"] == 4 and removed["count"] == N + 20
    hits = search(gallery, "--pose", tmp_path / "q.json", "-k", N + 24)
    assert len(hits) == N + 20 and not {h["key"] for h in hits} & {"b000001", "b000002", "b000003", "b000004"}
    fails("gallery", "search", gallery, "--key", "b000001", contains="b000001")
    info = json.loads(dml("gallery", "info", gallery, "--json").stdout)
    assert all(i["current"] for i in info["indexes"]) and info["calibrations"]["image"]["current"]
    fails("gallery", "remove", gallery, contains="--key")
    # Another model's gallery, or a caption gallery without the text model, is refused.
    other = tmp_path / "other"
    shutil.copytree(original, other)
    con = sqlite3.connect(other / "gallery.sqlite")
    con.execute("UPDATE spaces SET fingerprint = 'sha256:another-model' WHERE name = 'image'")
    con.commit()
    con.close()
    fails(*add_args(other, people, text), contains="another-model")
    if text is not None:
        fails("gallery", "add", gallery, "--coco", people / "person_keypoints.json", "--images", people / "images",
              "--model", MODEL, contains="caption space")


def test_within_a_pose_distance_is_exact_for_poses_and_follows_the_calibration_for_examples(built, tmp_path):
    _, gallery, _, records, _ = built
    query = records[5].keypoints.copy()
    query[:, :2] += np.random.default_rng(1).normal(0, 1.0, (17, 2)) * (query[:, 2:] > 0)
    (tmp_path / "q.json").write_text(json.dumps(query.tolist()))
    ranking = python_ranking(query, records)
    within = (ranking[len(ranking) // 4][0] + ranking[len(ranking) // 4 + 1][0]) / 2  # clear of any item's distance
    hits = search(gallery, "--pose", tmp_path / "q.json", "--within", within)
    assert [h["key"] for h in hits] == [k for d, _, k in ranking if d <= within]
    # By key: the calibrated range map (knots in SQLite) applied to every stored embedding, here with NumPy.
    keys, x, _, calibration = stored(gallery)
    assert calibration is not None
    q = x[keys.index(pathlib.Path(records[9].file_name).stem)]
    estimate = calibrated(calibration, cosine_distance(x, q), "rangeKnots")
    for t in np.quantile(estimate, [0.0, 0.3, 0.7]):
        hits = search(gallery, "--key", pathlib.Path(records[9].file_name).stem, "--within", t)
        boundary = {k for k, e in zip(keys, estimate) if abs(e - t) < 1e-5}
        assert {h["key"] for h in hits} - boundary == {k for k, e in zip(keys, estimate) if e <= t} - boundary
        for h in hits:
            assert abs(h["estimated_pose_distance"] - estimate[keys.index(h["key"])]) < 1e-4
    fails("gallery", "search", gallery, "--pose", tmp_path / "q.json", "--key", keys[0], "--within", 0.5, contains="one query part")
    fails("gallery", "search", gallery, "--pose", tmp_path / "q.json", "--within", -1)


def test_combined_search_equals_a_brute_force_weighted_mean(built, tmp_path):
    _, gallery, _, records, _ = built
    keys, x, poses, calibration = stored(gallery)
    key = keys[11]
    query_pose = records[30].keypoints
    (tmp_path / "q.json").write_text(json.dumps(query_pose.tolist()))
    image_part = calibrated(calibration, cosine_distance(x, x[11]))
    expected = []
    for i, k in enumerate(keys):
        try:
            d = pose_distance(query_pose, poses[i])
        except PoseDistanceError:
            continue
        expected.append(((1 * image_part[i] + 2.5 * d) / 3.5, k))
    expected.sort()
    hits = search(gallery, "--key", key, "--pose", tmp_path / "q.json", "--weight", "pose=2.5", "-k", 15)
    assert [h["key"] for h in hits] == [k for _, k in expected[:15]]
    np.testing.assert_allclose([h["distance"] for h in hits], [s for s, _ in expected[:15]], atol=1e-4)
    np.testing.assert_allclose([h["score"] for h in hits], [1 / (1 + s) for s, _ in expected[:15]], atol=1e-4)  # higher is closer
    assert set(hits[0]["part_distances"]) == {"key", "pose"}
    fails("gallery", "search", gallery, "--key", key, "--pose", tmp_path / "q.json", "--weight", "caption=2", contains="caption")
    fails("gallery", "search", gallery, "--key", key, "--pose", tmp_path / "q.json", "--weight", "pose=-1", contains="PART=W")


def test_info_and_calibrate_report_the_calibration_error(built, tmp_path):
    _, original, _, _, _ = built
    info = json.loads(dml("gallery", "info", original, "--json").stdout)
    c = info["calibrations"]["image"]
    assert c["current"] and c["held_out_pairs"] > 0 and c["fit_pairs"] > 0 and c["knots"] >= 1
    assert 0 <= c["held_out_mae"] < 5 and len(c["held_out_range"]) == 4
    assert all({"threshold", "precision", "recall"} <= set(r) for r in c["held_out_range"])
    gallery = tmp_path / "g"
    shutil.copytree(original, gallery)
    refit = json.loads(dml("gallery", "calibrate", gallery, "--space", "image", "--seed", 4, "--json").stdout)
    assert refit["image"]["seed"] == 4 and refit["image"]["current"]
    assert "held-out MAE" in dml("gallery", "info", gallery).stdout


def test_bad_input_to_add_changes_nothing(built, more, tmp_path):
    _, original, _, _, text = built
    people, new_records = more
    gallery = tmp_path / "g"
    shutil.copytree(original, gallery)
    before = state(gallery)

    def variant(name, change_keypoints=None, broken_image=None, blank_caption=False):
        folder = tmp_path / name
        shutil.copytree(people, folder)
        if broken_image:
            (folder / "images" / broken_image).write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
        if change_keypoints:
            data = json.loads((folder / "person_keypoints.json").read_text())
            change_keypoints(data["annotations"][-1]["keypoints"])
            (folder / "person_keypoints.json").write_text(json.dumps(data))
        if blank_caption:
            data = json.loads((folder / "captions.json").read_text())
            data["annotations"][-1]["caption"] = "   "
            (folder / "captions.json").write_text(json.dumps(data))
        return folder

    last = new_records[-1].file_name
    fails(*add_args(gallery, variant("broken", broken_image=last), text, "--batch", 4), contains=last)

    def outside(k):
        k[3 * 9] = 90.0  # left wrist to x = 90 in a 64-pixel image
        k[3 * 9 + 2] = 2
    fails(*add_args(gallery, variant("outside", change_keypoints=outside), text, "--batch", 4), contains="outside")

    def few(k):
        for j in range(17):
            if j not in (5, 6, 11, 12):
                k[3 * j + 2] = 0
    fails(*add_args(gallery, variant("few", change_keypoints=few), text, "--batch", 4), contains="labelled joints")
    if text is not None:
        fails(*add_args(gallery, variant("blank", blank_caption=True), text, "--batch", 4), contains="caption")
    assert state(gallery) == before


def test_a_killed_add_loses_nothing_and_can_be_finished(built, tmp_path):
    _, original, _, _, text = built
    people, _ = generate(tmp_path / "many", 240, 21, "k")
    gallery = tmp_path / "g"
    shutil.copytree(original, gallery)
    base = state(gallery)[0]
    process = subprocess.Popen([DML, *map(str, add_args(gallery, people, text, "--batch", 8))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            con = sqlite3.connect(f"file:{gallery / 'gallery.sqlite'}?mode=ro", uri=True)
            count = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            con.close()
            if count > base:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the add finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    count, _, integrity = state(gallery)
    assert integrity == "ok" and count > base and (count - base) % 8 == 0 and count < base + 240
    # A search rebuilds the indexes that lag the store in memory (it writes nothing): it finds every stored item.
    keys, _, _, _ = stored(gallery)
    by_key = search(gallery, "--key", keys[-1], "-k", count)
    assert sorted(h["key"] for h in by_key) == sorted(keys)
    info = json.loads(dml("gallery", "info", gallery, "--json").stdout)
    assert info["count"] == count and not all(i["current"] for i in info["indexes"])
    # The next command that opens it for writing saves them; then they all match the store.
    dml("gallery", "calibrate", gallery)
    info = json.loads(dml("gallery", "info", gallery, "--json").stdout)
    assert info["count"] == count and all(i["current"] for i in info["indexes"])
    assert search(gallery, "--key", keys[-1], "-k", count) == by_key
    # Finishing the add with --skip-existing gives the whole set.
    finished = json.loads(dml(*add_args(gallery, people, text, "--skip-existing", "--json")).stdout)
    assert finished["skipped"] == count - base and finished["count"] == base + 240


def test_a_full_disk_while_saving_loses_nothing(built, more, tmp_path):
    """`dml gallery add` in a child process whose files may not grow past a limit (RLIMIT_FSIZE, SIGXFSZ ignored,
    so writes fail with EFBIG as on a full disk), for limits that stop it at different steps: in SQLite (nothing
    added), after the commit while saving an index (items stored, previous index file intact, rebuilt on the next
    open), or not at all."""
    _, original, _, _, text = built
    people, _ = more
    outcomes = set()
    for limit in [8 << 10, 24 << 10, 32 << 10, 40 << 10, 48 << 10, 64 << 10, 80 << 10, 96 << 10, 112 << 10, 160 << 10, 1 << 30]:
        gallery = tmp_path / f"g{limit}"
        shutil.copytree(original, gallery)
        before_count = state(gallery)[0]
        index_files = {p.name: p.read_bytes() for p in gallery.glob("*.faiss")}

        def limited():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        result = subprocess.run([DML, *map(str, add_args(gallery, people, text, "--batch", 24))], capture_output=True,
                                text=True, preexec_fn=limited)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            assert lines[-1].startswith("dml: ") and result.returncode == 1, result.stderr
        count, _, integrity = state(gallery)
        assert integrity == "ok" and count in (before_count, before_count + 24)
        assert not list(gallery.glob(".*.tmp")), "a temporary file was left behind"
        for name, data in index_files.items():
            if count == before_count:
                assert (gallery / name).read_bytes() == data, f"{name} changed though nothing was added"
            else:  # the old file or a whole new one, never a torn one: FAISS must read it
                assert (gallery / name).read_bytes() == data or faiss.read_index(str(gallery / name)).ntotal == count
        outcomes.add((result.returncode, count - before_count))
        # Searches work on the same full disk (they write nothing) and see every stored item.
        searched = subprocess.run([DML, "gallery", "search", str(gallery), "--key", "000000", "-k", str(count), "--json"],
                                  capture_output=True, text=True, preexec_fn=limited)
        assert searched.returncode == 0, searched.stderr
        assert len(json.loads(searched.stdout)) == count
        # The next writable open with room to write is consistent: every index matches the store.
        dml("gallery", "calibrate", gallery)
        info = json.loads(dml("gallery", "info", gallery, "--json").stdout)
        assert info["count"] == count and all(i["current"] for i in info["indexes"])
        assert len(search(gallery, "--key", "000000", "-k", count)) == count
    assert {(1, 0), (1, 24), (0, 24)} <= outcomes, outcomes


def test_a_locked_gallery_fails_clearly_after_the_busy_timeout(built, tmp_path):
    _, original, _, _, _ = built
    gallery = tmp_path / "g"
    shutil.copytree(original, gallery)
    before = state(gallery)
    other = sqlite3.connect(gallery / "gallery.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock past dml's 5 s busy timeout
    try:
        fails("gallery", "remove", gallery, "--key", "000001", contains="locked")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert state(gallery) == before
    assert json.loads(dml("gallery", "remove", gallery, "--key", "000001", "--json").stdout)["removed"] == 1


# ---- reliability: damaged indexes, read-only galleries, lost stores, huge numbers, decompression bombs -------------


def files_of(directory):
    """Every file's bytes, SQLite's lock files left out (a reader may create an empty -wal and the -shm wal-index
    where the directory allows; the WAL must stay empty)."""
    out = {}
    for p in sorted(pathlib.Path(directory).iterdir()):
        if p.name.endswith("-shm") or (p.name.endswith("-wal") and p.stat().st_size == 0):
            continue
        out[p.name] = p.read_bytes()
    return out


def stale_copy(original, target):
    """A copy of the gallery whose image index file is another gallery's (same ids, other vectors) and whose pose
    index is truncated, with the generations left "current": only the index records can tell."""
    shutil.copytree(original, target)
    image = faiss.read_index(str(target / "image.faiss"))
    vectors = np.random.default_rng(3).normal(size=(image.ntotal, image.d)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    other = faiss.IndexIDMap2(faiss.IndexFlatIP(image.d))
    other.add_with_ids(vectors, faiss.vector_to_array(faiss.downcast_index(image).id_map))
    faiss.write_index(other, str(target / "image.faiss"))
    pose = (target / "pose.faiss").read_bytes()
    (target / "pose.faiss").write_bytes(pose[: len(pose) // 2])
    return target


def reference_results(original, tmp_path, records):
    pose = tmp_path / "ref-pose.json"
    pose.write_text(json.dumps(records[4].keypoints.tolist()))
    return pose, search(original, "--key", "000003", "-k", N), search(original, "--pose", pose, "-k", N)


def test_damaged_index_files_are_rebuilt_and_searches_stay_right(built, tmp_path):
    _, original, _, records, _ = built
    pose, by_key, by_pose = reference_results(original, tmp_path, records)
    gallery = stale_copy(original, tmp_path / "g")
    before = files_of(gallery)
    assert search(gallery, "--key", "000003", "-k", N) == by_key
    assert search(gallery, "--pose", pose, "-k", N) == by_pose
    assert files_of(gallery) == before  # rebuilt in memory only
    current = {i["name"]: i["current"] for i in json.loads(dml("gallery", "info", gallery, "--json").stdout)["indexes"]}
    assert not current["image"] and not current["pose"]  # their generations say "current"; their records do not
    dml("gallery", "calibrate", gallery)  # a writable open saves the rebuilt files
    assert all(i["current"] for i in json.loads(dml("gallery", "info", gallery, "--json").stdout)["indexes"])
    assert faiss.read_index(str(gallery / "pose.faiss")).ntotal == N
    assert search(gallery, "--key", "000003", "-k", N) == by_key


def run_as_nobody(*args):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", DML, *map(str, args)],
                          capture_output=True, text=True)


def test_a_read_only_gallery_is_searchable_as_another_user_and_on_a_read_only_mount(built, tmp_path):
    _, original, _, records, _ = built
    pose, by_key, by_pose = reference_results(original, tmp_path, records)
    # Root ignores permission bits: search as `nobody` in a directory it may read but not write.
    if shutil.which("setpriv") is None or not os.access(DML, os.X_OK):
        pytest.skip("setpriv is not available")
    shared = pathlib.Path(tempfile.mkdtemp(prefix="dml-readonly-", dir="/tmp"))
    try:
        gallery = stale_copy(original, shared / "g")
        for lock in gallery.glob("gallery.sqlite-*"):  # closed cleanly: nobody cannot create the -shm, SQLite falls back
            lock.unlink()
        os.chmod(shared, 0o755)
        for p in [gallery, *gallery.iterdir()]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        probe = run_as_nobody("--help")
        if probe.returncode != 0:
            pytest.skip(f"cannot run dml as nobody: {probe.stderr.strip()}")
        before = files_of(gallery)
        for args, expected in [(["--key", "000003"], by_key), (["--pose", pose], by_pose)]:
            if args[0] == "--pose":
                shutil.copy(pose, shared / "pose.json")
                os.chmod(shared / "pose.json", 0o644)
                args = ["--pose", shared / "pose.json"]
            result = run_as_nobody("gallery", "search", gallery, *args, "-k", N, "--json")
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout) == expected
        assert run_as_nobody("gallery", "info", gallery, "--json").returncode == 0
        assert run_as_nobody("gallery", "eval", gallery, "--queries", 5, "--json").returncode == 0
        refused = run_as_nobody("gallery", "remove", gallery, "--key", "000003")
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
        assert files_of(gallery) == before
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    # A read-only bind mount, in a private mount namespace so nothing outlives the test. The gallery's last commit
    # is still only in its WAL (as a killed writer leaves it), with the -shm beside it: SQLite reads it read-only.
    mounted = tmp_path / "m"
    writer = sqlite3.connect(original / "gallery.sqlite", isolation_level=None)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("UPDATE items SET caption = 'only in the WAL' WHERE key = '000003'")
        stale_copy(original, mounted)
        writer.execute("UPDATE items SET caption = ? WHERE key = '000003'", (by_key[0].get("caption"),))
    finally:
        writer.close()
    assert (mounted / "gallery.sqlite-wal").stat().st_size > 0
    before = files_of(mounted)
    view = tmp_path / "view"
    view.mkdir()
    script = (f'mount --bind "{mounted}" "{view}" && mount -o remount,ro,bind "{view}" && touch "{view}/probe" 2>/dev/null '
              f'&& exit 3; "{DML}" gallery search "{view}" --key 000003 -k {N} --json')
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if result.returncode != 0 and ("mount" in result.stderr or "unshare" in result.stderr or result.returncode == 3):
        pytest.skip(f"no read-only bind mount here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits[0]["caption"] == "only in the WAL"
    assert [h["key"] for h in hits] == [h["key"] for h in by_key]
    assert files_of(mounted) == before


def test_a_search_on_a_full_disk_works_and_writes_nothing(built, tmp_path):
    _, original, _, records, _ = built
    pose, by_key, by_pose = reference_results(original, tmp_path, records)
    gallery = stale_copy(original, tmp_path / "g")
    before = files_of(gallery)

    def no_room():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write that grows a file fails with EFBIG

    for args, expected in [(["--key", "000003"], by_key), (["--pose", pose], by_pose)]:
        result = subprocess.run([DML, "gallery", "search", gallery, *map(str, args), "-k", str(N), "--json"],
                                capture_output=True, text=True, preexec_fn=no_room)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == expected
    for args in [["info", gallery, "--json"], ["eval", gallery, "--queries", "5", "--json"]]:
        result = subprocess.run([DML, "gallery", *map(str, args)], capture_output=True, text=True, preexec_fn=no_room)
        assert result.returncode == 0 and json.loads(result.stdout), result.stderr
    assert files_of(gallery) == before


def test_a_zero_length_store_is_refused_and_left_alone(built, tmp_path):
    _, _, people, _, text = built
    gallery = tmp_path / "g"
    gallery.mkdir()
    (gallery / "gallery.sqlite").write_bytes(b"")
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps([[0, 0, 2]] * 17))
    fails("gallery", "search", gallery, "--key", "000001", "-k", 3, contains="empty (0 bytes)")
    fails("gallery", "info", gallery, contains="empty (0 bytes)")
    fails("gallery", "eval", gallery, "--queries", 5, contains="empty (0 bytes)")
    fails(*add_args(gallery, people, text), contains="empty (0 bytes)")
    fails("gallery", "build", gallery, "--coco", people / "person_keypoints.json", "--images", people / "images",
          "--model", MODEL, contains="empty (0 bytes)")
    assert [p.name for p in gallery.iterdir()] == ["gallery.sqlite"] and (gallery / "gallery.sqlite").stat().st_size == 0


def test_huge_numbers_are_clamped_or_refused_in_one_line(built, tmp_path):
    _, gallery, _, records, _ = built
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps(records[4].keypoints.tolist()))
    everything = search(gallery, "--pose", pose, "-k", N)
    assert search(gallery, "--pose", pose, "-k", 10**18) == everything
    assert search(gallery, "--pose", pose, "-k", 2**63 - 1) == everything
    combined = search(gallery, "--pose", pose, "--key", "000003", "-k", N)
    assert len(combined) == N
    assert search(gallery, "--pose", pose, "--key", "000003", "-k", 2**62) == combined
    assert search(gallery, "--pose", pose, "--key", "000003", "--weight", "pose=1e300", "--weight", "key=1e300",
                  "-k", 2**62) == combined
    fails("gallery", "search", gallery, "--pose", pose, "--key", "000003", "--weight", "pose=1.7e308", "--weight",
          "key=1.7e308", "-k", 3, contains="weights add up")
    for w in ["nan", "inf", "0", "-1", "1e999"]:
        fails("gallery", "search", gallery, "--pose", pose, "--key", "000003", f"--weight=pose={w}", "-k", 3, contains="--weight")
    for radius in ["-1", "nan", "inf", "-inf"]:
        fails("gallery", "search", gallery, "--pose", pose, f"--within={radius}")
    for k in ["0", "-1", str(2**63)]:
        fails("gallery", "search", gallery, "--pose", pose, f"-k={k}")
    assert json.loads(dml("gallery", "eval", gallery, "--queries", 2**63 - 1, "--json").stdout)["queries"] <= N
    for q in ["0", "-5", str(2**64)]:
        fails("gallery", "eval", gallery, f"--queries={q}")


def peak_rss_of(args):
    """(returncode, stderr, peak resident bytes) of one child dml run, from its own rusage (wait4)."""
    process = subprocess.Popen([DML, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, stderr, usage.ru_maxrss * 1024


@pytest.mark.parametrize("name", ["bomb_progressive_huge.jpg", "bomb_progressive_8k.jpg", "bomb_baseline_huge.jpg",
                                  "many_scans.jpg", "bomb_huge.png", "bomb_8k.png"])
def test_decompression_bombs_are_refused_with_bounded_memory(built, name):
    _, gallery, people, records, _ = built
    fixture = REPO / "Tests" / "Fixtures" / "images" / name
    honest = peak_rss_of(["gallery", "search", gallery, "--example", people / "images" / records[0].file_name,
                          "--model", MODEL, "-k", 3])
    assert honest[0] == 0, honest[1]
    code, stderr, peak = peak_rss_of(["gallery", "search", gallery, "--example", fixture, "--model", MODEL, "-k", 3])
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and name in lines[0], stderr
    # The crafted header is refused before the decoder allocates for it: no more memory than a real search.
    assert peak < honest[2] + (32 << 20), (peak, honest[2])
