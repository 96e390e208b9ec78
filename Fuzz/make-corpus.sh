#!/usr/bin/env bash
# Rewrites the committed seed corpora in Fuzz/corpus/<target>/ from the project's own writers (the harnesses'
# seed hooks: DML_FUZZ_WRITE_SEEDS), the Python side (exporter, people generator, NumPy, faiss-cpu, Pillow) and
# the test fixtures (keeping the found_* inputs of closed findings). Run from the repository root after `Fuzz/fuzz.sh build`; the result is committed, so this
# only needs to run when a writer changes.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BIN=Fuzz/.build/release
# The Swift runtime's backtracer and ASan trip over each other on a fatal error.
export SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0
OUT=Fuzz/corpus
# found_* are closed findings (moved here from Fuzz/findings): no writer makes them, so they stay.
[ -d "$OUT" ] && find "$OUT" -type f ! -name 'found_*' -delete
mkdir -p "$OUT"/{safetensors,npy,faiss,tokenizer,coco,image,gallery}

for t in npy faiss tokenizer image gallery; do DML_FUZZ_WRITE_SEEDS="$OUT/$t" "$BIN/fuzz-$t"; done

cp Tests/Fixtures/npy/*.npy "$OUT/npy/"
cp Tests/Fixtures/images/*.png Tests/Fixtures/images/*.jpg "$OUT/image/"
for m in cnn-f32 cnn-f16 cnn-int8 cnn-unfolded-f32 mlp-f16; do cp "Tests/Fixtures/runtime/$m.safetensors" "$OUT/safetensors/"; done

# The people generator's COCO file (3 people), kept small.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m dmlkit.data.people.generate --out "$tmp/people" --count 3 --size 16 --quiet
cp "$tmp/people/person_keypoints.json" "$OUT/coco/generated_3.json"

OUT="$OUT" "$PY" - <<'PY'
import io, json, os
import numpy as np
import faiss, torch
from PIL import Image
from dmlkit.export import export_model

out = os.environ["OUT"]

# Models: the smallest graphs the exporter writes, so mutations reach the graph builder quickly.
torch.manual_seed(0)
export_model(torch.nn.Sequential(torch.nn.Linear(4, 3)), torch.zeros(2, 4), f"{out}/safetensors/linear_4x3.safetensors")
export_model(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)), torch.zeros(2, 4),
             f"{out}/safetensors/mlp_int8.safetensors", dtype="int8")
export_model(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval(), torch.zeros(1, 1, 4, 4),
             f"{out}/safetensors/conv_bn_4x4.safetensors", dtype="f16")

# .npy edge cases NumPy writes: versions 2 and 3, 3-D, big-endian, object-free structured dtype (refused).
def save(name, array, version=None):
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array)
    else:
        np.lib.format.write_array(buffer, array, version=version)
    open(f"{out}/npy/{name}", "wb").write(buffer.getvalue())
save("np_v2_f8_2x2.npy", np.arange(4, dtype=np.float64).reshape(2, 2), (2, 0))
save("np_v3_i8_3.npy", np.array([1, -2, 3], dtype=np.int64), (3, 0))
save("np_f4_2x1x2.npy", np.ones((2, 1, 2), dtype=np.float32))
save("np_be_i4_2.npy", np.array([1, 2], dtype=">i4"))
save("np_structured.npy", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")]))

# FAISS files written by faiss-cpu (other tools' files are opened as they are).
rng = np.random.default_rng(0)
x = rng.standard_normal((40, 4)).astype(np.float32)
def write(name, index, train=False, ids=None):
    if train:
        index.train(x)
    if ids is None:
        index.add(x[:12])
    else:
        index.add_with_ids(x[:len(ids)], np.array(ids, dtype=np.int64))
    faiss.write_index(index, f"{out}/faiss/py_{name}.faiss")
write("flat_l2", faiss.IndexFlatL2(4))
write("hnsw_flat", faiss.IndexHNSWFlat(4, 4))
write("ivf_flat", faiss.IndexIVFFlat(faiss.IndexFlatL2(4), 4, 2), train=True)
write("idmap2_big_ids", faiss.IndexIDMap2(faiss.IndexFlatIP(4)), ids=[0, 2**40, 2**63 - 1])
write("pq", faiss.IndexPQ(4, 2, 4), train=True)

# Images Pillow writes in the variants libpng/libjpeg treat differently.
def image(name, mode, fmt, size=(8, 6), **kw):
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), "RGB").convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, fmt, **kw)
    open(f"{out}/image/py_{name}", "wb").write(buffer.getvalue())
image("progressive.jpg", "RGB", "JPEG", progressive=True, quality=80)
image("grey.jpg", "L", "JPEG")
image("cmyk.jpg", "CMYK", "JPEG")
image("palette.png", "P", "PNG")
image("grey_alpha.png", "LA", "PNG")
image("interlaced.png", "RGB", "PNG", optimize=False)
image("rgb16.png", "I;16", "PNG")

# COCO edge cases around one valid person.
pose = []
for j in range(17):
    pose += [10.0 + j, 20.0 + 3 * j, 2]
person = {"id": 1, "image_id": 7, "keypoints": pose, "num_keypoints": 17, "bbox": [0, 0, 40, 80]}
cases = {
    "minimal": {"images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 64}], "annotations": [person]},
    "official_fields": {"info": {}, "licenses": [], "categories": [{"id": 1, "name": "person", "keypoints": []}],
                        "images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 64, "license": 1}],
                        "annotations": [dict(person, category_id=1, iscrowd=0, area=100.0, segmentation=[[0, 0, 1, 1]])]},
    "no_keypoints": {"images": [{"id": 7, "file_name": "a.png"}], "annotations": [{"id": 2, "image_id": 7}]},
    "unknown_image": {"images": [], "annotations": [person]},
    "huge_numbers": {"images": [{"id": 7, "file_name": "a.png"}],
                     "annotations": [dict(person, keypoints=[1e308 if i % 3 != 2 else 2 for i in range(51)])]},
    "tiny_torso": {"images": [{"id": 7, "file_name": "a.png"}],
                   "annotations": [dict(person, keypoints=[1e-300 * (i % 5) if i % 3 != 2 else 1 for i in range(51)])]},
    "bad_visibility": {"images": [{"id": 7, "file_name": "a.png"}], "annotations": [dict(person, keypoints=pose[:-1] + [3])]},
    "short_keypoints": {"images": [{"id": 7, "file_name": "a.png"}], "annotations": [dict(person, keypoints=pose[:48])]},
    "empty": {"images": [], "annotations": []},
}
for name, value in cases.items():
    open(f"{out}/coco/{name}.json", "w").write(json.dumps(value))
PY
du -sh "$OUT"/* | sed 's/^/corpus /'
