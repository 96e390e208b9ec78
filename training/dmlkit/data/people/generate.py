"""Generate a synthetic people data set on disk.

    python -m dmlkit.data.people.generate --out DIR --count N --seed S --size 64

writes ``DIR/images/000000.png ...``, ``DIR/person_keypoints.json`` (COCO person keypoints, with the
generator's pose/view metadata under each annotation's ``"dmlkit"`` key) and ``DIR/captions.json``
(COCO captions). Sample i depends only on (seed, i), so any count or worker split gives the same
images for the same indices.
"""

from __future__ import annotations

import argparse
import sys

from .writer import generate_dataset


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.data.people.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--count", type=int, required=True, help="number of people")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=64, help="image side in pixels (>= 16)")
    p.add_argument("--supersample", type=int, default=2, help="render at this multiple, then average down")
    p.add_argument("--captions-per-image", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="processes (the output does not depend on it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        s = generate_dataset(a.out, a.count, a.seed, a.size, a.supersample, a.captions_per_image, a.workers,
                             progress=not a.quiet)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {s['count']} people to {a.out} in {s['seconds']:.1f} s ({s['images_per_second']:.0f} images/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
