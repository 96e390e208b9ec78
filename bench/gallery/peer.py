"""The gallery pipeline in Python, mirroring what DMLKit's `Gallery` does, for bench/gallery/run.py.

    peer.py build     --people DIR --gallery DIR --model M --text-model T [--limit N] [--batch B]
    peer.py replicate --from DIR --gallery DIR --model M --text-model T --copies C [--batch B]
    peer.py query     --gallery DIR --queries DIR --model M --text-model T [--count N] [--warmup W] [--k K]

Prints one JSON line, like the Swift driver (bench/gallery/swift/main.swift).

- Images: Pillow decode -> the shipped `.safetensors` model rebuilt in PyTorch from its own architecture JSON (the
  same BatchNorm-folded conv/ReLU/linear graph and f16 weights widened to f32 that DMLRuntime runs).
- Captions: sentence-transformers all-MiniLM-L6-v2 (normalised), from the same model directory.
- Store: Python's sqlite3 with the gallery's schema (WAL, synchronous=FULL, one transaction per batch, a
  generation counter), then faiss-cpu `IndexIDMap2(IndexFlatIP)` per embedding space (cosine: inner product of
  L2-normalised copies) and `IndexIDMap2(IndexFlatL2(34))` over normalised pose label vectors; poses stored as
  51 little-endian float64s in a BLOB. A bulk load (build, replicate) writes every index once at the end, atomically
  (temp file, fsync, rename, fsync directory) with a small JSON sidecar and its generation recorded, as
  `dml gallery build` does with `Gallery.add(saveIndexes: false)` + `saveIndexes()`.
- Pose queries: 34-d label index for max(10k, 200) candidates, their id + pose read from SQLite and re-ranked
  exactly with `dmlkit.data.people.pose_distance_matrix` (vectorised numpy); whole rows only for the k returned.
- Every search fetches its hits' rows from SQLite (key, image, caption, pose, metadata), as `Gallery` does.
"""
import json
import os
import pathlib
import sqlite3
import sys
import time

import faiss
import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from torch import nn

from dmlkit.data.people.distance import normalize_pose, pose_distance_matrix

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, image TEXT, caption TEXT,
    pose BLOB, class_label INTEGER, metadata TEXT);
CREATE TABLE IF NOT EXISTS spaces(
    name TEXT PRIMARY KEY, dimension INTEGER NOT NULL, fingerprint TEXT NOT NULL,
    metric TEXT NOT NULL, factory TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS embeddings(
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    space TEXT NOT NULL REFERENCES spaces(name), vector BLOB NOT NULL,
    PRIMARY KEY(item_id, space));
INSERT OR IGNORE INTO meta VALUES('schema_version', '1');
INSERT OR IGNORE INTO meta VALUES('generation', '0');
"""
ITEM_COLUMNS = "id, key, image, caption, pose, class_label, metadata"


def now():
    return time.perf_counter()


def peak_rss_mib():
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class SafetensorsNet(nn.Module):
    """The runtime's layer graph (conv2d / relu / flatten / linear / l2_normalize, as the exporter writes it for
    PeopleCNN) rebuilt in PyTorch with the file's weights, plus its pixel preprocessing."""

    def __init__(self, path):
        super().__init__()
        with safe_open(str(path), "np") as f:
            meta = f.metadata()
            tensors = {k: torch.from_numpy(f.get_tensor(k).astype(np.float32)) for k in f.keys()}
        arch = json.loads(meta["dml.architecture"])
        self.fingerprint = meta.get("dml.fingerprint", "")
        pre = arch["preprocessing"]
        self.scale = float(pre["scale"])
        self.register_buffer("mean", torch.tensor(pre["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(pre["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.steps = []
        self.layers = nn.ModuleList()
        for node in arch["nodes"]:
            op, attrs, names = node["op"], node.get("attrs", {}), node.get("tensors", {})
            if op == "conv2d":
                w = tensors[names["weight"]]
                layer = nn.Conv2d(w.shape[1] * attrs["groups"], w.shape[0], tuple(w.shape[2:]), stride=tuple(attrs["stride"]),
                                  padding=tuple(attrs["padding"]), dilation=tuple(attrs["dilation"]), groups=attrs["groups"],
                                  bias="bias" in names)
            elif op == "linear":
                w = tensors[names["weight"]]
                layer = nn.Linear(w.shape[1], w.shape[0], bias="bias" in names)
            elif op == "relu":
                layer = nn.ReLU(inplace=True)
            elif op == "flatten":
                layer = nn.Flatten(attrs.get("start_dim", 1), attrs.get("end_dim", -1))
            elif op == "l2_normalize":
                layer = None
            else:
                raise SystemExit(f"peer.py: op {op} not supported by this peer")
            if layer is not None and names:
                with torch.no_grad():
                    layer.weight.copy_(tensors[names["weight"]])
                    if "bias" in names:
                        layer.bias.copy_(tensors[names["bias"]])
            self.steps.append(op)
            self.layers.append(layer if layer is not None else nn.Identity())
        self.eval()

    def forward(self, x):
        for op, layer in zip(self.steps, self.layers):
            x = nn.functional.normalize(x, dim=1) if op == "l2_normalize" else layer(x)
        return x

    def embed(self, pixels):
        """uint8 (N, H, W, 3) -> (N, dim) float32."""
        with torch.inference_mode():
            x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() * self.scale
            return self((x - self.mean) / self.std).numpy()


def decode(path):
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_replace(path, produce):
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    produce(tmp)
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)


class PyGallery:
    """SQLite store + derived faiss indexes, the same rows and files as DMLKit's Gallery."""

    def __init__(self, directory, spaces):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spaces = spaces  # name -> dimension (all cosine)
        self.db = sqlite3.connect(self.dir / "gallery.sqlite", isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript("BEGIN;" + SCHEMA + "COMMIT;")
        self.db.execute("BEGIN")
        for name, dim in spaces.items():
            self.db.execute("INSERT OR IGNORE INTO spaces VALUES(?, ?, ?, 'cosine', 'Flat')", (name, dim, "bench"))
        self.db.execute("COMMIT")
        self.indexes = {name: self._load_or_rebuild(name, dim, faiss.IndexFlatIP) for name, dim in spaces.items()}
        self.pose_index = self._load_or_rebuild("pose", 34, faiss.IndexFlatL2)

    def generation(self):
        return int(self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def count(self):
        return self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def _load_or_rebuild(self, name, dim, flat):
        path = self.dir / f"{name}.faiss"
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (f"index_generation:{name}",)).fetchone()
        if row and int(row[0]) == self.generation() and path.exists():
            return faiss.read_index(str(path))
        index = faiss.IndexIDMap2(flat(dim))
        if name == "pose":
            rows = self.db.execute("SELECT id, pose FROM items WHERE pose IS NOT NULL").fetchall()
            if rows:
                index.add_with_ids(np.stack([label_vector(parse_pose(p)) for _, p in rows]),
                                   np.array([i for i, _ in rows], dtype=np.int64))
        else:
            rows = self.db.execute("SELECT item_id, vector FROM embeddings WHERE space = ? ORDER BY item_id", (name,)).fetchall()
            if rows:
                index.add_with_ids(normalized(np.stack([np.frombuffer(v, "<f4") for _, v in rows])),
                                   np.array([i for i, _ in rows], dtype=np.int64))
        self._save(name, index, self.generation())
        return index

    def _save(self, name, index, generation):
        path = self.dir / f"{name}.faiss"
        atomic_replace(path, lambda tmp: faiss.write_index(index, str(tmp)))
        sidecar = json.dumps({"metric": "l2" if name == "pose" else "cosine", "factory": "Flat"}).encode()
        atomic_replace(self.dir / f"{name}.faiss.dml.json", lambda tmp: tmp.write_bytes(sidecar))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (f"index_generation:{name}", str(generation)))

    def add(self, items, embeddings, save=True):
        """items: dicts with key, image, caption, pose (51 floats), metadata; embeddings: space -> (N, dim).
        ``save=False`` leaves the index files to :meth:`save_indexes` (a bulk load saves once at the end)."""
        keys = [it["key"] for it in items]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key in batch")
        for key in keys:
            if self.db.execute("SELECT id FROM items WHERE key = ?", (key,)).fetchone():
                raise ValueError(f"duplicate key {key}")
        for name, dim in self.spaces.items():
            v = embeddings[name]
            if v.shape != (len(items), dim) or not np.isfinite(v).all() or not np.any(v, axis=1).all():
                raise ValueError(f"bad {name} embeddings")
        ids = []
        self.db.execute("BEGIN")
        try:
            for row, it in enumerate(items):
                pose = np.asarray(it["pose"], "<f8").tobytes()
                cur = self.db.execute("INSERT INTO items(key, image, caption, pose, class_label, metadata) VALUES(?, ?, ?, ?, ?, ?)",
                                      (it["key"], it["image"], it["caption"], pose, None, it["metadata"]))
                ids.append(cur.lastrowid)
                for name in self.spaces:
                    self.db.execute("INSERT INTO embeddings VALUES(?, ?, ?)",
                                    (cur.lastrowid, name, embeddings[name][row].astype("<f4").tobytes()))
            self.db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = 'generation'")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        ids = np.array(ids, dtype=np.int64)
        for name in self.spaces:
            self.indexes[name].add_with_ids(normalized(embeddings[name]), ids)
        self.pose_index.add_with_ids(np.stack([label_vector(it["pose"]) for it in items]), ids)
        if save:
            self.save_indexes()
        return ids

    def save_indexes(self):
        generation = self.generation()
        for name, index in list(self.indexes.items()) + [("pose", self.pose_index)]:
            self._save(name, index, generation)

    def fetch(self, ids):
        if len(ids) == 0:
            return {}
        rows = self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id IN ({','.join('?' * len(ids))})",
                               [int(i) for i in ids]).fetchall()
        return {r[0]: {"key": r[1], "image": r[2], "caption": r[3], "pose": parse_pose(r[4]) if r[4] else None,
                       "class_label": r[5], "metadata": r[6]} for r in rows}

    def search(self, vector, space, k):
        index = self.indexes[space]
        scores, ids = index.search(normalized(np.asarray(vector, np.float32).reshape(1, -1)), min(k, index.ntotal))
        items = self.fetch(ids[0])
        return [(int(i), items[i], float(s)) for i, s in zip(ids[0], scores[0]) if i in items]

    def search_pose(self, keypoints, k):
        query = label_vector(keypoints)
        n = min(self.pose_index.ntotal, max(10 * k, 200))
        _, ids = self.pose_index.search(query.reshape(1, -1), n)
        cand = np.unique(ids[0][ids[0] >= 0])
        rows = self.db.execute(f"SELECT id, pose FROM items WHERE pose IS NOT NULL AND id IN ({','.join('?' * len(cand))})",
                               [int(i) for i in cand]).fetchall()
        d = pose_distance_matrix(np.asarray(keypoints, np.float64).reshape(1, 17, 3),
                                 np.stack([parse_pose(p) for _, p in rows]).reshape(-1, 17, 3), too_few="nan")[0]
        order = sorted((float(dist), i) for dist, (i, _) in zip(d, rows) if not np.isnan(dist))[:k]
        items = self.fetch([i for _, i in order])
        return [(i, items[i], dist) for dist, i in order]

    def search_caption(self, text, model, k):
        return self.search(model.encode([text], normalize_embeddings=True, show_progress_bar=False), "caption", k)


def parse_pose(blob):
    return np.frombuffer(blob, "<f8").copy()


def label_vector(keypoints):
    q, _ = normalize_pose(np.asarray(keypoints, np.float64).reshape(17, 3))
    return q.reshape(-1).astype(np.float32)


def normalized(v):
    v = np.array(v, dtype=np.float32, copy=True)
    faiss.normalize_L2(v)
    return v


def people(root, limit=None):
    """(person dicts, caption by image id) from a generated people folder."""
    root = pathlib.Path(root)
    coco = json.loads((root / "person_keypoints.json").read_text())
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    captions = {}
    for a in json.loads((root / "captions.json").read_text())["annotations"]:
        captions.setdefault(a["image_id"], a["caption"])
    persons = [a for a in coco["annotations"] if a.get("keypoints")]
    if limit is not None:
        persons = persons[:limit]
    return [{"path": str(root / "images" / files[a["image_id"]]), "stem": pathlib.Path(files[a["image_id"]]).stem,
             "pose": np.asarray(a["keypoints"], np.float64), "caption": captions[a["image_id"]], "annotation_id": a["id"],
             "image_id": a["image_id"]} for a in persons]


def load_models(opts):
    from sentence_transformers import SentenceTransformer
    start = now()
    net = SafetensorsNet(opts["model"])
    text = SentenceTransformer(opts["text-model"], device="cpu")
    spaces = {"image": net(torch.zeros(1, 3, 64, 64)).shape[1], "caption": (getattr(text, "get_embedding_dimension", None) or text.get_sentence_embedding_dimension)()}
    return net, text, spaces, now() - start


def build(opts):
    batch = int(opts.get("batch", 64))
    net, text, spaces, load_s = load_models(opts)
    target = pathlib.Path(opts["gallery"])
    if target.exists():
        import shutil
        shutil.rmtree(target)
    start = now()
    persons = people(opts["people"], int(opts["limit"]) if "limit" in opts else None)
    gallery = PyGallery(target, spaces)
    t_decode = t_image = t_text = t_add = 0.0
    for s in range(0, len(persons), batch):
        chunk = persons[s:s + batch]
        t = now()
        pixels = np.stack([decode(p["path"]) for p in chunk])
        items = [{"key": p["stem"], "image": p["path"], "caption": p["caption"], "pose": p["pose"],
                  "metadata": f'{{"annotation_id": {p["annotation_id"]}, "image_id": {p["image_id"]}}}'} for p in chunk]
        t_decode += now() - t
        t = now()
        image_vectors = net.embed(pixels)
        t_image += now() - t
        t = now()
        caption_vectors = text.encode([p["caption"] for p in chunk], batch_size=batch, normalize_embeddings=True,
                                      show_progress_bar=False)
        t_text += now() - t
        t = now()
        gallery.add(items, {"image": image_vectors, "caption": caption_vectors}, save=False)
        t_add += now() - t
    t = now()
    gallery.save_indexes()
    t_add += now() - t
    seconds = now() - start
    return {"items": len(persons), "seconds": seconds, "images_per_s": len(persons) / seconds, "batch": batch,
            "decode_s": t_decode, "embed_image_s": t_image, "embed_caption_s": t_text, "add_s": t_add, "load_s": load_s,
            "peak_rss_mib": peak_rss_mib(), "torch_threads": torch.get_num_threads(), "count": gallery.count()}


def replicate(opts):
    copies, batch = int(opts["copies"]), int(opts.get("batch", 10000))
    src = sqlite3.connect(pathlib.Path(opts["from"]) / "gallery.sqlite")
    spaces = dict(src.execute("SELECT name, dimension FROM spaces ORDER BY rowid"))  # no models needed: nothing is embedded
    target = pathlib.Path(opts["gallery"])
    if target.exists():
        import shutil
        shutil.rmtree(target)
    start = now()
    rows = src.execute(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id").fetchall()
    vectors = {name: {i: np.frombuffer(v, "<f4") for i, v in src.execute(
        "SELECT item_id, vector FROM embeddings WHERE space = ?", (name,))} for name in spaces}
    gallery = PyGallery(target, spaces)
    read_s = now() - start
    everything = [(c, r) for c in range(copies) for r in rows]
    adds = 0
    for s in range(0, len(everything), batch):
        chunk = everything[s:s + batch]
        items = [{"key": f"r{c}-{r[1]}", "image": r[2], "caption": r[3], "pose": parse_pose(r[4]), "metadata": r[6]}
                 for c, r in chunk]
        gallery.add(items, {name: np.stack([vectors[name][r[0]] for _, r in chunk]) for name in spaces}, save=False)
        adds += 1
    gallery.save_indexes()
    return {"items": len(everything), "seconds": now() - start, "read_s": read_s, "adds": adds, "batch": batch,
            "peak_rss_mib": peak_rss_mib(), "count": gallery.count()}


def query(opts):
    count, warmup, k, shown = int(opts.get("count", 300)), int(opts.get("warmup", 20)), int(opts.get("k", 10)), int(opts.get("keys", 20))
    net, text, spaces, load_s = load_models(opts)
    t = now()
    gallery = PyGallery(opts["gallery"], spaces)
    open_s = now() - t
    persons = people(opts["queries"], count)
    images = [decode(p["path"]) for p in persons]  # "by example" starts from pixels in memory
    embeddings = [net.embed(im[None]) for im in images]
    result = {"items": gallery.count(), "open_s": open_s, "load_s": load_s, "queries": len(persons), "warmup": warmup, "k": k}

    only = set(opts.get("types", ",".join(["example", "embedding", "pose", "caption"])).split(","))

    def timed(name, body):
        if name not in only:
            return
        for i in range(min(warmup, len(persons))):
            body(i)
        ms, keys = [], []
        for i in range(len(persons)):
            t = now()
            hits = body(i)
            ms.append((now() - t) * 1000)
            if i < shown:
                keys.append([h[1]["key"] for h in hits])
        result[name] = {"ms": ms, "keys": keys}

    timed("example", lambda i: gallery.search(net.embed(images[i][None]), "image", k))
    timed("embedding", lambda i: gallery.search(embeddings[i], "image", k))
    timed("pose", lambda i: gallery.search_pose(persons[i]["pose"], k))
    timed("caption", lambda i: gallery.search_caption(persons[i]["caption"], text, k))
    result["peak_rss_mib"] = peak_rss_mib()
    result["torch_threads"] = torch.get_num_threads()
    return result


def main():
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    faiss.omp_set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    command, rest = sys.argv[1], sys.argv[2:]
    opts = {rest[i][2:]: rest[i + 1] for i in range(0, len(rest), 2)}
    result = {"build": build, "replicate": replicate, "query": query}[command](opts)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
