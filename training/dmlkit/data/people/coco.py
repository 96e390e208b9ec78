"""COCO person-keypoint and caption annotation files: reading (ours and the official COCO ones) and
writing (what the synthetic generator emits).

Keypoints file (``person_keypoints_*.json``)::

    {"images": [{"id", "file_name", "width", "height"}, ...],
     "annotations": [{"id", "image_id", "category_id", "keypoints": [x, y, v] x 17, "num_keypoints",
                      "bbox": [x, y, w, h], "area", "iscrowd"}, ...],
     "categories": [{"id": 1, "name": "person", "keypoints": [...], "skeleton": [...]}]}

Captions file (``captions_*.json``)::

    {"images": [...], "annotations": [{"id", "image_id", "caption"}, ...]}

Unknown fields are kept (``PersonRecord.extra``) and ignored otherwise; malformed files raise
``ValueError`` saying which file and which entry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from .keypoints import NUM_KEYPOINTS, as_keypoints, person_category


@dataclass
class PersonRecord:
    """One person annotation joined with its image."""

    annotation_id: int
    image_id: int
    file_name: str
    width: int | None
    height: int | None
    keypoints: np.ndarray          # (17, 3) float64: x, y, v
    bbox: np.ndarray               # (4,) x, y, w, h
    num_keypoints: int
    iscrowd: bool
    extra: dict = field(default_factory=dict)

    def image_path(self, image_dir: str) -> str:
        return os.path.join(image_dir, self.file_name)


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"annotation file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _list_field(data: dict, key: str, source: str) -> list:
    if key not in data:
        raise ValueError(f"{source}: missing required field {key!r}")
    if not isinstance(data[key], list):
        raise ValueError(f"{source}: field {key!r} must be a list, got {type(data[key]).__name__}")
    return data[key]


def _int_field(entry, key: str, where: str, required: bool = True):
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        if required:
            raise ValueError(f"{where}: missing required field {key!r}")
        return None
    v = entry[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{where}: field {key!r} must be an integer, got {v!r}")
    return v


def _images(data: dict, source: str) -> dict[int, dict]:
    images: dict[int, dict] = {}
    for i, im in enumerate(_list_field(data, "images", source)):
        where = f"{source}: images[{i}]"
        iid = _int_field(im, "id", where)
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise ValueError(f"{where}: missing or empty 'file_name'")
        if iid in images:
            raise ValueError(f"{where}: duplicate image id {iid}")
        for key in ("width", "height"):
            _int_field(im, key, where, required=False)
        images[iid] = im
    return images


def _person_category_ids(data: dict, source: str) -> set[int] | None:
    """Ids of categories named 'person'; None when the file has no categories (then all count)."""
    if "categories" not in data:
        return None
    cats = _list_field(data, "categories", source)
    ids = {_int_field(c, "id", f"{source}: categories[{i}]") for i, c in enumerate(cats)
           if isinstance(c, dict) and c.get("name") == "person"}
    if not ids:
        raise ValueError(f"{source}: no category named 'person'")
    return ids


def parse_coco_keypoints(data: dict, source: str = "<annotations>", include_crowd: bool = False,
                         min_keypoints: int = 1) -> list[PersonRecord]:
    """Person records from an already-parsed COCO keypoints dict (see :func:`load_coco_keypoints`)."""
    images = _images(data, source)
    person_ids = _person_category_ids(data, source)
    records = []
    for i, ann in enumerate(_list_field(data, "annotations", source)):
        where = f"{source}: annotations[{i}]"
        aid = _int_field(ann, "id", where, required=False)
        if aid is not None:
            where += f" (id {aid})"
        cat = _int_field(ann, "category_id", where, required=False)
        if person_ids is not None and cat is not None and cat not in person_ids:
            continue
        iid = _int_field(ann, "image_id", where)
        if iid not in images:
            raise ValueError(f"{where}: image_id {iid} is not in 'images'")
        if "keypoints" not in ann:
            raise ValueError(f"{where}: missing required field 'keypoints'")
        raw = ann["keypoints"]
        if not isinstance(raw, list) or len(raw) != NUM_KEYPOINTS * 3:
            n = len(raw) if isinstance(raw, list) else type(raw).__name__
            raise ValueError(f"{where}: 'keypoints' must be a list of {NUM_KEYPOINTS * 3} numbers "
                             f"({NUM_KEYPOINTS} x [x, y, v]), got {n}")
        kp = as_keypoints(raw, where)
        labelled = kp[:, 2] > 0
        crowd = bool(ann.get("iscrowd", 0))
        if (crowd and not include_crowd) or labelled.sum() < min_keypoints:
            continue
        if "bbox" in ann:
            bbox = np.asarray(ann["bbox"], dtype=np.float64)
            if bbox.shape != (4,) or not np.isfinite(bbox).all():
                raise ValueError(f"{where}: 'bbox' must be [x, y, width, height], got {ann['bbox']!r}")
        elif labelled.any():
            lo, hi = kp[labelled, :2].min(0), kp[labelled, :2].max(0)
            bbox = np.concatenate([lo, hi - lo])
        else:
            bbox = np.zeros(4)
        im = images[iid]
        known = {"id", "image_id", "category_id", "keypoints", "num_keypoints", "bbox", "iscrowd"}
        records.append(PersonRecord(
            annotation_id=aid if aid is not None else i, image_id=iid, file_name=im["file_name"],
            width=im.get("width"), height=im.get("height"), keypoints=kp, bbox=bbox,
            num_keypoints=int(ann.get("num_keypoints", int(labelled.sum()))), iscrowd=crowd,
            extra={k: v for k, v in ann.items() if k not in known}))
    return records


def load_coco_keypoints(path: str, include_crowd: bool = False, min_keypoints: int = 1) -> list[PersonRecord]:
    """Read a COCO person-keypoints JSON file: one :class:`PersonRecord` per person annotation.

    Crowd annotations and people with fewer than ``min_keypoints`` labelled joints are skipped
    (``min_keypoints=0`` keeps them all); non-person categories are skipped.
    """
    return parse_coco_keypoints(_read_json(path), path, include_crowd, min_keypoints)


def load_captions(path: str) -> dict[int, list[str]]:
    """Read a COCO captions JSON file: image id -> its captions, in file order."""
    data = _read_json(path)
    images = _images(data, path) if "images" in data else None
    out: dict[int, list[str]] = {}
    for i, ann in enumerate(_list_field(data, "annotations", path)):
        where = f"{path}: annotations[{i}]"
        iid = _int_field(ann, "image_id", where)
        if images is not None and iid not in images:
            raise ValueError(f"{where}: image_id {iid} is not in 'images'")
        text = ann.get("caption")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: 'caption' must be a non-empty string")
        out.setdefault(iid, []).append(text.strip())
    return out


def image_entry(image_id: int, file_name: str, width: int, height: int) -> dict:
    return {"id": int(image_id), "file_name": file_name, "width": int(width), "height": int(height)}


def keypoint_annotation(ann_id: int, image_id: int, keypoints: np.ndarray, bbox, area: float,
                        extra: dict | None = None) -> dict:
    """A COCO person annotation; coordinates rounded to 1/100 pixel, x = y = 0 where v = 0."""
    k = as_keypoints(keypoints).copy()
    k[k[:, 2] == 0, :2] = 0.0
    flat = []
    for x, y, v in k:
        flat += [round(float(x), 2), round(float(y), 2), int(v)]
    ann = {"id": int(ann_id), "image_id": int(image_id), "category_id": 1, "keypoints": flat,
           "num_keypoints": int((k[:, 2] > 0).sum()), "bbox": [round(float(b), 2) for b in bbox],
           "area": round(float(area), 2), "iscrowd": 0}
    if extra:
        ann.update(extra)
    return ann


def write_coco_keypoints(path: str, images: list[dict], annotations: list[dict], info: dict | None = None) -> None:
    """Write a COCO person-keypoints file (``images`` and ``annotations`` as built by
    :func:`image_entry` and :func:`keypoint_annotation`)."""
    data = {"info": info or {}, "licenses": [], "images": images, "annotations": annotations,
            "categories": [person_category()]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))


def write_captions(path: str, images: list[dict], captions: dict[int, list[str]], info: dict | None = None) -> None:
    """Write a COCO captions file from image id -> list of captions."""
    anns, next_id = [], 1
    for iid in sorted(captions):
        for text in captions[iid]:
            anns.append({"id": next_id, "image_id": int(iid), "caption": text})
            next_id += 1
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"info": info or {}, "licenses": [], "images": images, "annotations": anns}, f, separators=(",", ":"))
