"""COCO keypoint/caption files: generator output round trip, official-style files, bad input, CLI."""

import json
import os

import numpy as np
import pytest

from dmlkit.data.people import (crop_person, generate_dataset, load_captions, load_coco_keypoints, load_people,
                                sample_person)
from dmlkit.data.people import generate
from dmlkit.data.people.images import load_image, save_png


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("people"))
    summary = generate_dataset(out, count=6, seed=21, size=32, captions_per_image=2)
    return out, summary


def test_generator_writes_images_keypoints_and_captions(dataset):
    out, summary = dataset
    assert summary["count"] == 6
    assert sorted(os.listdir(os.path.join(out, "images"))) == [f"{i:06d}.png" for i in range(6)]
    with open(os.path.join(out, "person_keypoints.json")) as f:
        doc = json.load(f)
    assert doc["categories"][0]["name"] == "person" and len(doc["categories"][0]["keypoints"]) == 17
    assert len(doc["annotations"]) == 6 and all(len(a["keypoints"]) == 51 for a in doc["annotations"])


def test_round_trip_matches_the_generated_samples(dataset):
    out, _ = dataset
    records = load_coco_keypoints(os.path.join(out, "person_keypoints.json"))
    captions = load_captions(os.path.join(out, "captions.json"))
    assert len(records) == 6
    for i, r in enumerate(records):
        s = sample_person(np.random.default_rng([21, i]), 32)
        expected = s.keypoints.copy()
        expected[expected[:, 2] == 0, :2] = 0
        assert np.allclose(r.keypoints, expected, atol=0.005 + 1e-9)
        assert np.array_equal(r.keypoints[:, 2], s.keypoints[:, 2])
        assert np.array_equal(load_image(r.image_path(os.path.join(out, "images"))), s.image)
        assert captions[r.image_id][0] == s.caption and len(captions[r.image_id]) == 2
        assert r.extra["dmlkit"]["activity"] == s.meta["activity"]
        assert r.num_keypoints == int((s.keypoints[:, 2] > 0).sum())


def test_load_people_gives_arrays(dataset):
    out, _ = dataset
    data = load_people(os.path.join(out, "person_keypoints.json"), os.path.join(out, "images"),
                       os.path.join(out, "captions.json"))
    assert data.images.shape == (6, 32, 32, 3) and data.keypoints.shape == (6, 17, 3) and len(data.captions) == 6
    half = load_people(os.path.join(out, "person_keypoints.json"), os.path.join(out, "images"), size=16, limit=2)
    assert half.images.shape == (2, 16, 16, 3) and half.captions is None
    assert np.allclose(half.keypoints[:, :, :2], data.keypoints[:2, :, :2] / 2)


def test_same_seed_writes_identical_files(dataset, tmp_path):
    out, _ = dataset
    generate_dataset(str(tmp_path), count=6, seed=21, size=32, captions_per_image=2)
    for name in ("person_keypoints.json", "captions.json", "images/000003.png"):
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(tmp_path, name), "rb") as b:
            assert a.read() == b.read(), name


def _write(path, doc):
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _kp(n=17, v=2):
    return [c for j in range(n) for c in (10.0 + j, 20.0 + j, v)]


def official_style(tmp_path):
    """What the official person_keypoints_*.json looks like: several people per image, crowds,
    another category, people without keypoints."""
    return {
        "images": [{"id": 139, "file_name": "000000000139.jpg", "width": 640, "height": 426},
                   {"id": 785, "file_name": "000000000785.jpg", "width": 640, "height": 425}],
        "annotations": [
            {"id": 1, "image_id": 139, "category_id": 1, "keypoints": _kp(), "num_keypoints": 17,
             "bbox": [5.0, 15.0, 40.0, 50.0], "area": 900.0, "iscrowd": 0, "segmentation": [[1, 2, 3]]},
            {"id": 2, "image_id": 139, "category_id": 1, "keypoints": _kp(v=0), "num_keypoints": 0,
             "bbox": [0, 0, 1, 1], "iscrowd": 0},
            {"id": 3, "image_id": 785, "category_id": 1, "keypoints": _kp(v=1), "iscrowd": 1},
            {"id": 4, "image_id": 785, "category_id": 1, "keypoints": _kp(v=1), "iscrowd": 0},
            {"id": 5, "image_id": 785, "category_id": 18, "keypoints": _kp(), "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}],
    }


def test_official_style_file(tmp_path):
    path = _write(tmp_path / "kp.json", official_style(tmp_path))
    records = load_coco_keypoints(path)
    assert [r.annotation_id for r in records] == [1, 4]  # no empty person, crowd or dog
    assert records[0].file_name == "000000000139.jpg" and records[0].width == 640
    assert records[0].extra == {"segmentation": [[1, 2, 3]], "area": 900.0}
    assert np.allclose(records[1].bbox, [10, 20, 16, 16])  # computed from the keypoints
    assert records[1].num_keypoints == 17
    assert [r.annotation_id for r in load_coco_keypoints(path, include_crowd=True, min_keypoints=0)] == [1, 2, 3, 4]


@pytest.mark.parametrize("mutate, message", [
    (lambda d: "{not json", "not valid JSON"),
    (lambda d: "[1, 2]", "JSON object"),
    (lambda d: {k: v for k, v in d.items() if k != "images"}, "missing required field 'images'"),
    (lambda d: {k: v for k, v in d.items() if k != "annotations"}, "missing required field 'annotations'"),
    (lambda d: {**d, "images": {}}, "'images' must be a list"),
    (lambda d: {**d, "categories": [{"id": 18, "name": "dog"}]}, "no category named 'person'"),
    (lambda d: {**d, "images": d["images"] + [d["images"][0]]}, "duplicate image id 139"),
    (lambda d: {**d, "images": [{"id": 139}]}, "file_name"),
    (lambda d: _ann(d, keypoints=_kp(16)), r"annotations\[0\] \(id 1\): 'keypoints' must be a list of 51"),
    (lambda d: _ann(d, keypoints="1 2 3"), "must be a list of 51"),
    (lambda d: _ann(d, keypoints=_kp()[:-1] + [3]), "visibility"),
    (lambda d: _ann(d, keypoints=_kp()[:-1] + [None]), "not a finite number"),
    (lambda d: _ann(d, keypoints=_kp()[:-1] + ["x"]), "not numeric"),
    (lambda d: _ann(d, image_id=9), "image_id 9 is not in 'images'"),
    (lambda d: _ann(d, image_id="139"), "must be an integer"),
    (lambda d: _ann(d, bbox=[1, 2, 3]), "bbox"),
    (lambda d: _ann(d, keypoints=None), "must be a list of 51"),
])
def test_malformed_keypoint_files_give_clear_errors(tmp_path, mutate, message):
    path = _write(tmp_path / "kp.json", mutate(official_style(tmp_path)))
    with pytest.raises(ValueError, match=message) as e:
        load_coco_keypoints(path)
    assert "kp.json" in str(e.value)


def _ann(doc, **changes):
    doc["annotations"][0].update(changes)
    return doc


def test_missing_keypoints_field_is_named(tmp_path):
    doc = official_style(tmp_path)
    del doc["annotations"][0]["keypoints"]
    with pytest.raises(ValueError, match="missing required field 'keypoints'"):
        load_coco_keypoints(_write(tmp_path / "kp.json", doc))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_coco_keypoints(str(tmp_path / "nope.json"))


def test_captions_file(tmp_path):
    doc = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
           "annotations": [{"id": 1, "image_id": 2, "caption": " a person sitting "},
                           {"id": 2, "image_id": 1, "caption": "someone running"},
                           {"id": 3, "image_id": 2, "caption": "a seated figure"}]}
    caps = load_captions(_write(tmp_path / "c.json", doc))
    assert caps == {2: ["a person sitting", "a seated figure"], 1: ["someone running"]}


@pytest.mark.parametrize("ann, message", [
    ({"id": 1, "image_id": 1}, "'caption' must be a non-empty string"),
    ({"id": 1, "image_id": 1, "caption": "  "}, "non-empty"),
    ({"id": 1, "caption": "x"}, "missing required field 'image_id'"),
    ({"id": 1, "image_id": 5, "caption": "x"}, "image_id 5"),
])
def test_malformed_captions_give_clear_errors(tmp_path, ann, message):
    doc = {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [ann]}
    with pytest.raises(ValueError, match=message):
        load_captions(_write(tmp_path / "c.json", doc))


def test_missing_caption_for_an_image_is_an_error(dataset, tmp_path):
    out, _ = dataset
    doc = json.load(open(os.path.join(out, "captions.json")))
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != 3]
    with pytest.raises(ValueError, match="no caption for image id 3"):
        load_people(os.path.join(out, "person_keypoints.json"), os.path.join(out, "images"),
                    _write(tmp_path / "c.json", doc))


def test_unreadable_image_is_a_clear_error(tmp_path):
    _write(tmp_path / "broken.png", "this is not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        load_image(str(tmp_path / "broken.png"))
    with pytest.raises(ValueError, match="not found"):
        load_image(str(tmp_path / "missing.png"))


def test_crop_person_maps_keypoints_into_the_crop():
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 90:110] = 255  # a white square, the "person"
    k = np.zeros((17, 3))
    k[0] = (100, 50, 2)    # centre of the bbox
    k[1] = (91, 41, 1)
    k[2] = (199, 99, 2)    # outside the crop
    crop, kc = crop_person(image, k, (90, 40, 20, 20), size=50, margin=2.0)  # 40 x 40 square at (80, 30)
    assert crop.shape == (50, 50, 3)
    assert np.allclose(kc[0], (25, 25, 2)) and np.allclose(kc[1], (13.75, 13.75, 1))
    assert np.array_equal(kc[2], [0, 0, 0])
    assert crop[25, 25].min() > 200 and crop[2, 2].max() == 0


def test_bbox_crop_loading(tmp_path):
    img = np.full((40, 60, 3), 100, np.uint8)
    save_png(str(tmp_path / "x.png"), img)
    doc = {"images": [{"id": 1, "file_name": "x.png", "width": 60, "height": 40}],
           "annotations": [{"id": 1, "image_id": 1, "keypoints": _kp(), "bbox": [10, 20, 16, 16]}]}
    data = load_people(_write(tmp_path / "kp.json", doc), str(tmp_path), size=24, crop="bbox")
    assert data.images.shape == (1, 24, 24, 3)
    with pytest.raises(ValueError, match="needs size"):
        load_people(str(tmp_path / "kp.json"), str(tmp_path), crop="bbox")


def test_cli(tmp_path, capsys):
    assert generate.main(["--out", str(tmp_path), "--count", "3", "--seed", "4", "--size", "24", "--quiet"]) == 0
    assert "wrote 3 people" in capsys.readouterr().out
    assert len(load_coco_keypoints(str(tmp_path / "person_keypoints.json"))) == 3
    assert generate.main(["--out", str(tmp_path), "--count", "0", "--quiet"]) == 1
    assert "count must be >= 1" in capsys.readouterr().err
