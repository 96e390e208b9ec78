"""The gallery pipeline through the CLI on a people set shaped like real photos (Tests/Fixtures/pipeline: two
people in one image, an EXIF-rotated JPEG, a CMYK JPEG, an annotation without a box, one too weak to compare):

- a weak annotation refuses the build by default and leaves nothing behind; --skip-invalid leaves it out and says so;
- the two people of one image get two crops and two different embeddings (that each equals the model's embedding
  of its crop is checked in Swift, PipelineConsumerTests);
- searching by caption and by pose works on that gallery (pose ranking equals the Python pose distance);
- a gallery built through the library by another program (gallery-bench) is searchable by `dml` by caption;
- a wrong model (d16 against d128) is refused in one line that says so by the dimensions.
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

REPO = pathlib.Path(__file__).resolve().parents[2]
DML = os.environ.get("DML_BIN", str(REPO / ".build" / "debug" / "dml"))
BENCH = str(pathlib.Path(DML).parent / "gallery-bench")
MODEL = REPO / "models" / "pose-logratio-d128.safetensors"
SMALL = REPO / "models" / "pose-logratio-d16.safetensors"
PEOPLE = REPO / "Tests" / "Fixtures" / "pipeline"
sys.path.insert(0, str(REPO / "training"))
from dmlkit.data.people.distance import PoseDistanceError, pose_distance  # noqa: E402

TEXT = REPO / "models" / "text" / "all-MiniLM-L6-v2"


def dml(*args, check=True):
    result = subprocess.run([DML, *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dml {' '.join(map(str, args))} failed: {result.stderr}")
    return result


def fails(*args, contains=()):
    result = dml(*args, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("dml: "), result.stderr
    for text in contains:
        assert text in lines[0], lines[0]
    return lines[0]


def build_args(gallery, *extra):
    args = ["gallery", "build", gallery, "--coco", PEOPLE / "person_keypoints.json", "--images", PEOPLE / "images",
            "--model", MODEL, *extra]
    if (TEXT / "config.json").exists():
        args += ["--captions", PEOPLE / "captions.json", "--text-model", TEXT]
    return args


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    g = root / "gallery"
    summary = json.loads(dml(*build_args(g, "--skip-invalid", "--json")).stdout)
    return g, summary


def test_a_weak_annotation_refuses_the_build_and_leaves_nothing(tmp_path):
    line = fails(*build_args(tmp_path / "g"), contains=("annotation 51", "labelled joints"))
    assert "weak.png" in line
    assert list(tmp_path.iterdir()) == []


def test_skipped_annotations_are_reported_and_people_get_their_own_crops(gallery):
    g, summary = gallery
    assert summary["added"] == 5
    assert [(s["annotation_id"], s["file_name"]) for s in summary["skipped_annotations"]] == [(51, "weak.png")]
    con = sqlite3.connect(g / "gallery.sqlite")
    rows = dict(con.execute("SELECT i.key, e.vector FROM items i JOIN embeddings e ON e.item_id = i.id AND e.space = 'image'"))
    crops = dict(con.execute("SELECT key, crop FROM items"))
    con.close()
    assert set(rows) == {"two-11", "two-12", "rotated", "cmyk", "nobox"}
    left, right = (np.frombuffer(rows[k], dtype="<f4") for k in ("two-11", "two-12"))
    assert float(left @ right) < 0.99  # identical (1.0) when whole images were embedded
    lx, _, lw, _ = map(int, crops["two-11"].split(","))
    rx, _, _, _ = map(int, crops["two-12"].split(","))
    assert lx + lw <= 72 and rx >= 56  # each crop around its own half of the 128x64 picture


def test_caption_and_pose_searches_work_on_it(gallery, tmp_path):
    g, _ = gallery
    coco = json.loads((PEOPLE / "person_keypoints.json").read_text())
    query = next(a for a in coco["annotations"] if a["id"] == 21)["keypoints"]
    (tmp_path / "pose.json").write_text(json.dumps(query))
    hits = json.loads(dml("gallery", "search", g, "--pose", tmp_path / "pose.json", "-k", 5, "--json").stdout)
    expected = []
    for a in coco["annotations"]:
        key = {11: "two-11", 12: "two-12", 21: "rotated", 31: "cmyk", 41: "nobox"}.get(a["id"])
        if key is None:
            continue
        try:
            expected.append((pose_distance(np.array(query).reshape(17, 3), np.array(a["keypoints"]).reshape(17, 3)), key))
        except PoseDistanceError:
            continue
    assert [h["key"] for h in hits] == [k for _, k in sorted(expected)]
    np.testing.assert_allclose([h["pose_distance"] for h in hits], [d for d, _ in sorted(expected)], atol=1e-9)
    if not (TEXT / "config.json").exists():
        pytest.skip("no text model (make text-model)")
    captions = json.loads((PEOPLE / "captions.json").read_text())
    cmyk = next(c["caption"] for c in captions["annotations"] if c["image_id"] == 3)
    by_caption = json.loads(dml("gallery", "search", g, "--caption", cmyk, "--text-model", TEXT, "-k", 1, "--json").stdout)
    assert by_caption[0]["key"] == "cmyk"


def test_a_wrong_model_is_named_with_both_dimensions(gallery):
    g, _ = gallery
    fails("gallery", "search", g, "--example", PEOPLE / "images" / "nobox.png", "--model", SMALL, "-k", 1,
          contains=(str(SMALL), "16-d", "128-d", "another model"))


def test_a_gallery_built_by_another_program_through_the_library_is_searchable_by_dml(tmp_path):
    if not (TEXT / "config.json").exists():
        pytest.skip("no text model (make text-model)")
    if not os.access(BENCH, os.X_OK):
        pytest.skip("gallery-bench is not built (swift build)")
    g = tmp_path / "bench-gallery"
    subprocess.run([BENCH, "build", "--people", PEOPLE, "--gallery", g, "--model", MODEL, "--text-model", TEXT],
                   check=True, capture_output=True)
    captions = json.loads((PEOPLE / "captions.json").read_text())
    text = next(c["caption"] for c in captions["annotations"] if c["image_id"] == 4)
    hits = json.loads(dml("gallery", "search", g, "--caption", text, "--text-model", TEXT, "-k", 1, "--json").stdout)
    assert hits[0]["key"] == "nobox"


def fnv1a64(chunks):
    h = 0xCBF29CE484222325
    for chunk in chunks:
        for byte in chunk:
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_the_stored_fingerprints_are_the_documented_ones(gallery):
    """docs/FORMATS.md's recipe, written again here: the image space stores the file's dml.fingerprint, the caption
    space FNV-1a over the text model's small files and the weight file's size."""
    from safetensors import safe_open

    g, _ = gallery
    con = sqlite3.connect(g / "gallery.sqlite")
    stored = dict(con.execute("SELECT name, fingerprint FROM spaces"))
    con.close()
    with safe_open(str(MODEL), "np") as f:
        assert stored["image"] == f.metadata()["dml.fingerprint"]
    if not (TEXT / "config.json").exists():
        pytest.skip("no text model (make text-model)")
    chunks = []
    for name in ["config.json", "vocab.txt", "tokenizer_config.json", "1_Pooling/config.json"]:
        chunks.append(name.encode())
        if (TEXT / name).exists():
            chunks.append((TEXT / name).read_bytes())
    chunks.append(f"model.safetensors:{(TEXT / 'model.safetensors').resolve().stat().st_size}".encode())
    assert stored["caption"] == f"text:fnv1a64:{fnv1a64(chunks):016x}"
