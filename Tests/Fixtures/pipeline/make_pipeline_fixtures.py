"""A small people set shaped like real photo collections, for the pipeline tests (Swift and interop):

- two.png: two generated people side by side in one 128x64 image (two annotations, each with its bbox);
- rotated.jpg: a person shown 64 wide x 96 tall, stored turned (96x64) with EXIF Orientation 6, as phones do;
  the annotation (keypoints, bbox, width/height) is in the displayed frame;
- cmyk.jpg: a person as a CMYK JPEG;
- nobox.png: a person whose annotation has no bbox (the crop comes from the keypoints' extent);
- weak.png: a person annotated with only 3 joints (cannot be compared: skipped and reported, or refused);
- person_keypoints.json (COCO) and captions.json.

Run from the repo root: .venv/bin/python Tests/Fixtures/pipeline/make_pipeline_fixtures.py
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[3]
out = pathlib.Path(__file__).parent
(out / "images").mkdir(exist_ok=True)

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "dmlkit.data.people.generate", "--out", tmp, "--count", "6", "--seed", "5",
                    "--size", "64", "--quiet"], check=True, cwd=REPO / "training")
    coco = json.loads((pathlib.Path(tmp) / "person_keypoints.json").read_text())
    captions = json.loads((pathlib.Path(tmp) / "captions.json").read_text())
    pictures = [np.asarray(Image.open(pathlib.Path(tmp) / "images" / im["file_name"]).convert("RGB")) for im in coco["images"]]
anns = coco["annotations"]
text = {c["image_id"]: c["caption"] for c in captions["annotations"]}


def shifted(ann, dx):
    k = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
    k[k[:, 2] > 0, 0] += dx
    b = list(ann["bbox"])
    b[0] += dx
    return k.reshape(-1).round(2).tolist(), b


images, annotations, caption_entries = [], [], []


def add(image_id, name, width, height, people, caption):
    images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    for ann_id, keypoints, bbox in people:
        a = {"id": ann_id, "image_id": image_id, "category_id": 1, "keypoints": keypoints, "iscrowd": 0,
             "num_keypoints": int(sum(1 for v in keypoints[2::3] if v > 0))}
        if bbox is not None:
            a["bbox"] = bbox
        annotations.append(a)
    caption_entries.append({"id": image_id, "image_id": image_id, "caption": caption})


Image.fromarray(np.concatenate([pictures[0], pictures[1]], axis=1)).save(out / "images" / "two.png")
add(1, "two.png", 128, 64, [(11, *shifted(anns[0], 0)), (12, *shifted(anns[1], 64))], text[1])

shown = np.concatenate([pictures[2], np.full((32, 64, 3), 200, np.uint8)], axis=0)  # 64 wide, 96 tall
exif = Image.Exif()
exif[0x0112] = 6  # the viewer turns the stored picture 90 degrees clockwise
Image.fromarray(shown).transpose(Image.Transpose.ROTATE_90).save(out / "images" / "rotated.jpg", quality=95, exif=exif.tobytes())
add(2, "rotated.jpg", 64, 96, [(21, *shifted(anns[2], 0))], text[3])

Image.fromarray(pictures[3]).convert("CMYK").save(out / "images" / "cmyk.jpg", quality=95)
add(3, "cmyk.jpg", 64, 64, [(31, *shifted(anns[3], 0))], text[4])

Image.fromarray(pictures[4]).save(out / "images" / "nobox.png")
add(4, "nobox.png", 64, 64, [(41, shifted(anns[4], 0)[0], None)], text[5])

weak = np.array(anns[5]["keypoints"], dtype=float).reshape(17, 3)
weak[3:] = 0  # nose and eyes only
Image.fromarray(pictures[5]).save(out / "images" / "weak.png")
add(5, "weak.png", 64, 64, [(51, weak.reshape(-1).tolist(), anns[5]["bbox"])], text[6])

categories = coco.get("categories", [])
(out / "person_keypoints.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}, indent=1))
(out / "captions.json").write_text(json.dumps({"images": images, "annotations": caption_entries}, indent=1))
