import numpy as np
import pytest

from dmlkit.experiments.score_spread import (NON_PERSON_PHOTOS, PERSON_PHOTOS, SECTION, card_section, photo_views,
                                             replace_section, spread)


def test_spread_matches_a_loop_over_cosines():
    rng = np.random.default_rng(3)
    gallery, queries, probes = rng.normal(size=(40, 6)), rng.normal(size=(12, 6)), rng.normal(size=(7, 6))
    # probes that copy gallery items score 1.0 at their best hit
    probes[:3] = gallery[:3] * 2.5
    out = spread(queries, gallery, {"p": probes})

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    best = [max(cos(q, g) for g in gallery) for q in queries]
    tenth = [sorted((cos(q, g) for g in gallery), reverse=True)[9] for q in queries]
    probe_best = [max(cos(x, g) for g in gallery) for x in probes]
    assert out["people"]["top1"]["p50"] == pytest.approx(np.median(best), abs=1e-12)
    assert out["people"]["top1"]["min"] == pytest.approx(min(best), abs=1e-12)
    assert out["people"]["top10"]["max"] == pytest.approx(max(tenth), abs=1e-12)
    assert out["p"]["top1"]["max"] == pytest.approx(1.0, abs=1e-12)
    assert out["p"]["top1"]["p5"] == pytest.approx(np.percentile(probe_best, 5), abs=1e-12)
    floor = np.percentile(best, 5)
    assert out["p"]["overlap"] == pytest.approx(np.mean([b >= floor for b in probe_best]))
    assert out["people"]["random"]["count"] == 12 and out["p"]["top1"]["count"] == 7


def test_spread_refuses_nan_zero_and_tiny_galleries():
    good = np.eye(10)
    with pytest.raises(ValueError, match="finite"):
        spread(np.full((2, 10), np.nan), good, {})
    with pytest.raises(ValueError, match="non-zero"):
        spread(good, good, {"zero": np.zeros((1, 10))})
    with pytest.raises(ValueError, match="at least 10"):
        spread(good, good[:9], {})


def test_photo_views_are_rgb_uint8_squares_of_the_sample_photos():
    for name in (NON_PERSON_PHOTOS[0], "page", PERSON_PHOTOS[0]):  # gray and colour samples
        views = photo_views(name, 64, views=3)
        assert views.shape == (3, 64, 64, 3) and views.dtype == np.uint8
        assert views.std() > 1  # a photo, not a blank tile
    assert np.array_equal(photo_views("coffee", 32, 2, seed=5), photo_views("coffee", 32, 2, seed=5))


def test_card_section_replaces_only_its_own_section():
    rng = np.random.default_rng(0)
    result = spread(rng.normal(size=(20, 4)), rng.normal(size=(30, 4)),
                    {"non_person_photos": rng.normal(size=(5, 4)), "person_photos": rng.normal(size=(2, 4))})
    section = card_section(result, 20, 30, 5, "cd training && python -m dmlkit.experiments.score_spread --model m")
    assert section.startswith(SECTION) and "score_spread --model m" in section and "| photo with no person" in section and "| real photo of a person" in section
    card = "# m\n\nintro\n\n## Held-out retrieval\n\nrows\n\n## Reproduce\n\ncmd\n"
    once = replace_section(card, section)
    assert once.endswith(section) and "## Reproduce\n\ncmd\n" in once
    # rewriting keeps one section and every other one
    again = replace_section(once, section.replace("Cosine", "COSINE"))
    assert again.count(SECTION) == 1 and "COSINE" in again and "## Held-out retrieval\n\nrows" in again
    middle = replace_section("# m\n\n" + section + "\n## Reproduce\n\ncmd\n", "## What a score means\n\nnew\n")
    assert middle == "# m\n\n## What a score means\n\nnew\n\n## Reproduce\n\ncmd\n"
