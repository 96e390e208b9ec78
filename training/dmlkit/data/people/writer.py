"""Write a synthetic people data set: PNG images, COCO person keypoints and COCO captions.

Sample i depends only on (seed, i), so any count or worker split gives the same images for the same
indices. The command line is :mod:`dmlkit.data.people.generate`.
"""

from __future__ import annotations

import os
import time

import numpy as np

from .captions import caption
from .coco import image_entry, keypoint_annotation, write_captions, write_coco_keypoints
from .images import save_png
from .synth import sample_person

KEYPOINTS_FILE, CAPTIONS_FILE, IMAGE_DIR = "person_keypoints.json", "captions.json", "images"


def _one(args):
    """Render sample ``index``, write its PNG, return its COCO entries (runs in worker processes)."""
    out, seed, index, size, supersample, n_captions = args
    s = sample_person(np.random.default_rng([seed, index]), size, supersample)
    name = f"{index:06d}.png"
    save_png(os.path.join(out, IMAGE_DIR, name), s.image)
    ys, xs = np.nonzero(s.figure_mask)
    bbox = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) if len(xs) else (0, 0, 0, 0)
    image_id = index + 1
    ann = keypoint_annotation(image_id, image_id, s.keypoints, bbox, float(s.figure_mask.sum()), {"dmlkit": s.meta})
    texts = [s.caption]
    extra_rng = np.random.default_rng([seed, index, 1])
    for _ in range(n_captions - 1):  # more wordings of the same pose and view
        p = s.pose
        texts.append(caption(extra_rng, p.activity, p.variant, p.arms, s.camera.yaw, s.camera.pitch,
                             (s.meta["clothing"]["top"], s.meta["clothing"]["trousers"])))
    return image_entry(image_id, name, size, size), ann, texts


def generate_dataset(out: str, count: int, seed: int = 0, size: int = 64, supersample: int = 2,
                     captions_per_image: int = 1, workers: int = 1, progress: bool = False) -> dict:
    """Write ``count`` samples to ``out`` (created if needed); return a summary with timings."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if captions_per_image < 1:
        raise ValueError(f"captions_per_image must be >= 1, got {captions_per_image}")
    os.makedirs(os.path.join(out, IMAGE_DIR), exist_ok=True)
    jobs = [(out, seed, i, size, supersample, captions_per_image) for i in range(count)]
    start = time.perf_counter()
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            results = list(_progress(pool.imap(_one, jobs, chunksize=16), count, progress))
    else:
        results = list(_progress(map(_one, jobs), count, progress))
    elapsed = time.perf_counter() - start
    images = [r[0] for r in results]
    info = {"description": "DMLKit synthetic people", "seed": seed, "count": count, "size": size,
            "supersample": supersample, "generator": "dmlkit.data.people"}
    write_coco_keypoints(os.path.join(out, KEYPOINTS_FILE), images, [r[1] for r in results], info)
    write_captions(os.path.join(out, CAPTIONS_FILE), images, {im["id"]: r[2] for im, r in zip(images, results)}, info)
    return {"count": count, "seconds": elapsed, "images_per_second": count / elapsed if elapsed > 0 else float("inf"),
            "keypoints": os.path.join(out, KEYPOINTS_FILE), "captions": os.path.join(out, CAPTIONS_FILE),
            "images": os.path.join(out, IMAGE_DIR)}


def _progress(it, total, enabled):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, unit="img")
