"""What a similarity score of a shipped people embedder means: the cosine scores of held-out people
against a gallery of people, next to the scores of photos that show no person at all.

A user who queries a gallery by example sees one number per hit. This measures, on the exported
file as the Swift runtime runs it (``dml embed``), how those numbers spread for true people and
for out-of-distribution photos (scikit-image's sample photos), and writes the answer into the
model card:

    python -m dmlkit.experiments.score_spread --model ../models/pose-binary-d128.safetensors \
        --data ../out/people/synth-s0-n18000 --card ../models/pose-binary-d128.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

# scikit-image sample photos with no person in them; the two real person photos are reported apart.
NON_PERSON_PHOTOS = ("brick", "chelsea", "clock", "coffee", "coins", "grass", "gravel", "horse",
                     "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text")
PERSON_PHOTOS = ("astronaut", "camera")
SECTION = "## What a score means"
PERCENTILES = (5, 50, 95)
# the release build of this checkout (training/dmlkit/experiments -> repository root)
DEFAULT_DML = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[os.pardir] * 3, ".build", "release", "dml")


def photo_views(name: str, size: int, views: int = 5, seed: int = 0) -> np.ndarray:
    """``views`` size x size RGB uint8 views of one scikit-image sample photo: its centred largest
    square, then random squares of 40-100 % of its shorter side (resized bilinearly)."""
    import skimage.data
    from PIL import Image

    photo = np.asarray(getattr(skimage.data, name)())
    if photo.ndim == 2:
        photo = np.repeat(photo[:, :, None], 3, axis=2)
    photo = photo[:, :, :3]
    if photo.dtype != np.uint8:  # some samples are bool or float in [0, 1]
        photo = np.clip(photo.astype(np.float64) * (255.0 if photo.max() <= 1 else 1.0), 0, 255).astype(np.uint8)
    h, w = photo.shape[:2]
    rng = np.random.default_rng(seed)
    out = []
    for v in range(views):
        side = min(h, w) if v == 0 else int(min(h, w) * rng.uniform(0.4, 1.0))
        y = (h - side) // 2 if v == 0 else int(rng.integers(0, h - side + 1))
        x = (w - side) // 2 if v == 0 else int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side])
        out.append(np.asarray(crop.resize((size, size), Image.BILINEAR)))
    return np.stack(out)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not np.all(np.isfinite(x)) or np.any(norms == 0):
        raise ValueError("embeddings must be finite and non-zero to have a cosine score")
    return x / norms


def _summary(scores: np.ndarray) -> dict:
    return {f"p{p}": float(np.percentile(scores, p)) for p in PERCENTILES} | {
        "min": float(scores.min()), "max": float(scores.max()), "count": int(scores.size)}


def spread(queries: np.ndarray, gallery: np.ndarray, probes: dict[str, np.ndarray], seed: int = 0) -> dict:
    """Cosine scores against ``gallery``: each query's best and 10th best hit and a random gallery
    item; each probe set's best hit. ``overlap``: the share of a probe set's best-hit scores at or
    above the 5th percentile of the queries' best-hit scores (1.0: a threshold that keeps 95 % of
    true top hits keeps every such photo too)."""
    g = _unit(gallery)
    if g.shape[0] < 10:
        raise ValueError("the gallery needs at least 10 items for a 10th best hit")
    q = _unit(queries) @ g.T
    ordered = -np.sort(-q, axis=1)
    random_item = q[np.arange(q.shape[0]), np.random.default_rng(seed).integers(0, g.shape[0], q.shape[0])]
    result = {"people": {"top1": _summary(ordered[:, 0]), "top10": _summary(ordered[:, 9]),
                         "random": _summary(random_item)}}
    floor = np.percentile(ordered[:, 0], 5)
    for name, images in probes.items():
        best = (_unit(images) @ g.T).max(axis=1)
        result[name] = {"top1": _summary(best), "overlap": float(np.mean(best >= floor))}
    return result


def dml_embed(dml: str, model: str, images: np.ndarray) -> np.ndarray:
    """Embeddings of uint8 (n, h, w, 3) images by the Swift runtime (``dml embed``)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.npy")
        np.save(src, np.ascontiguousarray(images, dtype=np.uint8))
        done = subprocess.run([dml, "embed", "--model", model, "--input", src, "--output", dst],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"dml embed failed (exit {done.returncode}): {done.stderr.strip()}")
        return np.load(dst)


def card_section(result: dict, queries: int, gallery: int, views: int, command: str) -> str:
    """Markdown of :func:`spread`'s result for a model card."""

    def cell(s: dict) -> str:
        return f"{s['p50']:.3f} [{s['p5']:.3f}, {s['p95']:.3f}] ({s['min']:.3f} - {s['max']:.3f})"

    p = result["people"]
    rows = [f"| held-out person, best hit | {p['top1']['count']} | {cell(p['top1'])} | - |",
            f"| held-out person, 10th best hit | {p['top10']['count']} | {cell(p['top10'])} | - |",
            f"| held-out person, random gallery person | {p['random']['count']} | {cell(p['random'])} | - |"]
    for name, label in (("person_photos", "real photo of a person (scikit-image " + ", ".join(PERSON_PHOTOS) + ")"),
                        ("non_person_photos", f"photo with no person ({len(NON_PERSON_PHOTOS)} scikit-image "
                                              "sample photos)")):
        if name in result:
            r = result[name]
            rows.append(f"| {label}, best hit | {r['top1']['count']} | {cell(r['top1'])} | {r['overlap']:.2f} |")
    overlap = result.get("non_person_photos", {}).get("overlap", 0.0)
    verdict = ("A score alone does **not** tell a person from something else: most photos with no person in "
               "them score as high as a true neighbour. Only give this model person crops (a detector or the "
               "gallery's annotated boxes decide what is a person), and read scores relative to the other hits "
               "of the same query, not as absolute confidence."
               if overlap >= 0.5 else
               "Photos with no person mostly score below true top hits, but the ranges overlap: use a threshold "
               "only as a hint, and give the model person crops.")
    return f"""{SECTION}

Cosine scores (the gallery's `--example` score for this L2-normalised model) against the {gallery} held-out
gallery people, as `dml embed` computes them from this file. Cells: median [5th, 95th percentile] (min - max).
"Overlap": share of that row's best-hit scores at or above the 5th percentile of the held-out people's best
hits. Photos enter as {views} views each (the centred square and random squares of 40-100 % of the shorter
side), resized to the model's input like the gallery's crops.

| query | n | score | overlap |
|---|---|---|---|
{chr(10).join(rows)}

{verdict}

Measured ({queries} held-out queries):

```
{command}
```
"""


def replace_section(card: str, section: str) -> str:
    """``card`` with its score section replaced by ``section`` (appended when it has none)."""
    start = card.find(SECTION)
    if start < 0:
        return card.rstrip("\n") + "\n\n" + section
    end = card.find("\n## ", start + len(SECTION))
    return card[:start] + section + ("" if end < 0 else "\n" + card[end + 1:])


def _range(text: str) -> slice:
    start, _, stop = text.partition(":")
    return slice(int(start), int(stop))


def main(argv: list[str] | None = None) -> int:
    from ..data.people import load_people
    from .people import _write_text  # atomic, as the cards' other writer

    p = argparse.ArgumentParser(prog="python -m dmlkit.experiments.score_spread", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="exported people embedder (.safetensors)")
    p.add_argument("--data", required=True, help="people data set (dmlkit.data.people)")
    p.add_argument("--queries", type=_range, default=_range("8000:10000"), help="held-out query people START:STOP")
    p.add_argument("--gallery", type=_range, default=_range("10000:18000"), help="held-out gallery people START:STOP")
    p.add_argument("--views", type=int, default=5, help="views per sample photo")
    p.add_argument("--dml", default=os.environ.get("DML_BIN", DEFAULT_DML), help="the dml binary (default: $DML_BIN, "
                   "else the repository's release build)")
    p.add_argument("--crop", type=int, default=0, help="the model's person-crop size (0: whole images): people are "
                   "embedded as the plain person crops it was trained and evaluated on")
    p.add_argument("--card", help="model card whose score section to write (replaced if present)")
    a = p.parse_args(argv)
    if not (os.path.isfile(a.dml) and os.access(a.dml, os.X_OK)):
        print(f"error: no dml binary at {a.dml} (build it: swift build -c release --product dml; or set DML_BIN)",
              file=sys.stderr)
        return 1
    people = load_people(os.path.join(a.data, "person_keypoints.json"), os.path.join(a.data, "images"), None,
                         limit=max(a.queries.stop, a.gallery.stop))
    if len(people.images) < max(a.queries.stop, a.gallery.stop):
        print(f"error: {a.data} has {len(people.images)} people, need {max(a.queries.stop, a.gallery.stop)}",
              file=sys.stderr)
        return 1
    if a.crop:
        from ..data.people.augment import PersonCrops

        people.images, _ = PersonCrops.of_people(people, a.crop).fixed(range(len(people.images)))
    size = people.images.shape[1]
    embed = lambda images: dml_embed(a.dml, a.model, images)  # noqa: E731
    probes = {"person_photos": embed(np.concatenate([photo_views(n, size, a.views) for n in PERSON_PHOTOS])),
              "non_person_photos": embed(np.concatenate([photo_views(n, size, a.views) for n in NON_PERSON_PHOTOS]))}
    result = spread(embed(people.images[a.queries]), embed(people.images[a.gallery]), probes)
    print(json.dumps(result, indent=1))
    if a.card:
        with open(a.card) as f:
            card = f.read()
        args = argv if argv is not None else sys.argv[1:]
        # the command without --dml (a path of this machine), run from training/ like the card's training command
        shown = [x for i, x in enumerate(args) if x != "--dml" and (i == 0 or args[i - 1] != "--dml")]
        command = "cd training && python -m dmlkit.experiments.score_spread " + " ".join(shown)
        section = card_section(result, a.queries.stop - a.queries.start, a.gallery.stop - a.gallery.start, a.views,
                               command)
        _write_text(a.card, replace_section(card, section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
