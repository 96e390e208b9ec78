"""Flips and jittered crops keep the pose label true; the alternative pose scales."""

import numpy as np
import pytest

from dmlkit.data.people import FLIP_INDEX, KEYPOINT_NAMES, crop_person, mirror_keypoints, pose_distance, sample_person
from dmlkit.data.people.augment import flip_person, jittered_person_crop
from dmlkit.data.people.distance import pose_distance_matrix, pose_scale_factors

LEFT_WRIST, RIGHT_WRIST = KEYPOINT_NAMES.index("left_wrist"), KEYPOINT_NAMES.index("right_wrist")


def dotted(keypoints, size, radius=0):
    """An image with one uniquely coloured square at every labelled keypoint (joint j: colour 10 + 10 j)."""
    img = np.zeros((size, size, 3), np.uint8)
    for j, (x, y, v) in enumerate(keypoints):
        if v > 0:
            c, r = int(x), int(y)
            img[max(r - radius, 0):r + radius + 1, max(c - radius, 0):c + radius + 1] = 10 + 10 * j
    return img


def colour_at(img, x, y):
    return int(img[int(y), int(x), 0])


@pytest.fixture(scope="module")
def person():
    return sample_person(np.random.default_rng([11, 3]), 96)


def test_flipped_labels_name_the_pixels_they_point_at(person):
    kp = person.keypoints.copy()
    kp[:, :2] = np.floor(kp[:, :2]) + 0.5  # pixel centres, so the dot and the keypoint agree exactly
    img = dotted(kp, 96)
    flipped, fk = flip_person(img, kp)
    for j in range(17):
        if kp[j, 2] > 0:
            # the flipped image's joint j is where the original's mirror partner was drawn
            assert colour_at(flipped, fk[j, 0], fk[j, 1]) == 10 + 10 * FLIP_INDEX[j], KEYPOINT_NAMES[j]
    assert FLIP_INDEX[LEFT_WRIST] == RIGHT_WRIST


def test_flipped_pose_distance(person):
    kp = person.keypoints
    _, fk = flip_person(person.image, kp)
    assert pose_distance(fk, mirror_keypoints(kp, width=96.0)) == 0.0
    # to the original: the plain distance of a pose and its mirror image, independent of where it is mirrored
    assert pose_distance(fk, kp) == pytest.approx(pose_distance(mirror_keypoints(kp), kp), abs=1e-12)
    assert pose_distance(fk, kp) > 0.05  # a real person is not left-right symmetric
    assert pose_distance(fk, kp, mirror=True) == pytest.approx(0.0, abs=1e-12)


def test_jittered_crop_without_jitter_is_the_plain_crop(person):
    box = person.meta.get("bbox") or _box(person.keypoints)
    rng = np.random.default_rng(0)
    crop, k, flipped = jittered_person_crop(person.image, person.keypoints, box, 64, rng, (1.0, 1.0), 0.0, 0.0)
    want, wk = crop_person(person.image, person.keypoints, box, 64)
    assert not flipped and np.array_equal(crop, want) and np.array_equal(k, wk)
    crop, k, flipped = jittered_person_crop(person.image, person.keypoints, box, 64, rng, (1.0, 1.0), 0.0, 1.0)
    fc, fk = flip_person(want, wk)
    assert flipped and np.array_equal(crop, fc) and np.array_equal(k, fk)


def _box(kp):
    xy = kp[kp[:, 2] > 0, :2]
    lo, hi = xy.min(0), xy.max(0)
    return (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])


def test_jittered_crops_keep_keypoints_on_their_pixels(person):
    kp = person.keypoints
    img = dotted(kp, 96, radius=2)  # 5 px squares survive the resize
    # joints whose square overlaps no other joint's (the face joints sit within a few pixels)
    xy, on = kp[:, :2], kp[:, 2] > 0
    gap = np.abs(xy[:, None] - xy[None]).max(-1) + np.where(on[:, None] & on[None], 0, 1e9) + 1e9 * np.eye(17)
    alone = on & (gap.min(1) > 6)
    assert alone.sum() >= 8
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(8):
        crop, k, flipped = jittered_person_crop(img, kp, _box(kp), 112, rng, (0.9, 1.1), 0.1, 0.5)
        for j in range(17):
            if k[j, 2] > 0 and alone[FLIP_INDEX[j] if flipped else j]:
                source = FLIP_INDEX[j] if flipped else j
                assert abs(colour_at(crop, k[j, 0], k[j, 1]) - (10 + 10 * source)) <= 5, (j, flipped)
                checked += 1
    assert checked > 40


def test_bad_boxes_and_jitter_are_refused(person):
    rng = np.random.default_rng(0)
    for box in [(0, 0, 0, 10), (0, 0, np.nan, 5)]:
        with pytest.raises(ValueError, match="bbox"):
            jittered_person_crop(person.image, person.keypoints, box, 64, rng)
    with pytest.raises(ValueError, match="jitter"):
        jittered_person_crop(person.image, person.keypoints, (0, 0, 10, 10), 64, rng, scale=(1.2, 1.0))


def pose(torso=1.0, width=1.0):
    """Hips at y=0, shoulders ``torso`` above, wrists/ankles making the extent 10 tall."""
    k = np.zeros((17, 3))
    named = {"left_hip": (-0.3, 0), "right_hip": (0.3, 0), "left_shoulder": (-width / 2, -torso),
             "right_shoulder": (width / 2, -torso), "left_ankle": (-0.3, 5), "right_ankle": (0.3, 5),
             "left_wrist": (-1, -5), "right_wrist": (1, -5)}
    for name, (x, y) in named.items():
        k[KEYPOINT_NAMES.index(name)] = (x + 50, y + 50, 2)
    return k


def test_pose_scales_by_hand():
    upright, foreshortened = pose(torso=3.0), pose(torso=0.2)
    # extent 10: clipped scale max(torso, 2.5); extent scale 10
    assert pose_scale_factors([upright, foreshortened], "torso_clipped") == pytest.approx([1.0, 0.2 / 2.5])
    assert pose_scale_factors([upright], "extent") == pytest.approx([0.3])
    assert pose_scale_factors([upright], "torso") == [1.0]
    with pytest.raises(ValueError, match="scale"):
        pose_scale_factors([upright], "height")
    # the torso-normalised distance explodes on the foreshortened torso; the clipped one stays bounded
    torso_d = pose_distance_matrix([upright, foreshortened])[0, 1]
    clipped_d = pose_distance_matrix([upright, foreshortened], scale="torso_clipped")[0, 1]
    assert torso_d > 10 and clipped_d < 2
    assert torso_d == pose_distance(upright, foreshortened)  # the default is the project's distance


def test_label_scale_plot_runs_and_clipping_bounds_the_radius(tmp_path):
    from dmlkit.experiments import pose_label_scales
    from dmlkit.experiments.people_labels import PoseLabels

    kps = np.stack([sample_person(np.random.default_rng([0, i]), 64).keypoints for i in range(12)])
    stats = pose_label_scales.label_statistics(kps)
    assert (stats["torso_clipped"]["radius"] <= stats["torso"]["radius"] + 1e-12).all()
    assert np.array_equal(PoseLabels(kps, scale="extent").distances(np.arange(12)),
                          pose_distance_matrix(kps, scale="extent", too_few="nan"))
    assert pose_label_scales.main(["--count", "8", "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_batch_flip_keeps_every_pairwise_pose_distance():
    from dmlkit.data.people.augment import PersonCrops

    samples = [sample_person(np.random.default_rng([7, i]), 96) for i in range(6)]
    images, kps = np.stack([s.image for s in samples]), np.stack([s.keypoints for s in samples])
    boxes = [_box(k) for k in kps]
    plain, plain_k = PersonCrops(images, kps, boxes, 48).fixed(range(6))
    flipped, flipped_k = PersonCrops(images, kps, boxes, 48, scale=(1, 1), shift=0.0, flip=1.0).batch(range(6))
    assert np.array_equal(flipped, plain[:, :, ::-1])
    want = pose_distance_matrix(plain_k, too_few="nan")
    np.testing.assert_allclose(pose_distance_matrix(flipped_k, too_few="nan"), want, rtol=1e-12, atol=1e-12)
    assert pose_distance_matrix(flipped_k, plain_k, too_few="nan").diagonal().min() > 0.05  # each one is mirrored
    jittered, jk = PersonCrops(images, kps, boxes, 48, seed=1).batch(range(6))
    assert jittered.shape == (6, 48, 48, 3) and not np.array_equal(jittered, plain)
    assert np.isfinite(pose_distance_matrix(jk, too_few="nan")).all()


def test_people_command_line_trains_on_person_crops(tmp_path):
    from dmlkit.experiments import people

    argv = ["--data", str(tmp_path / "data"), "--count", "30", "--train", "16", "--queries", "4", "--gallery", "10",
            "--steps", "2", "--batch", "8", "--dim", "8", "--width", "4", "--crop", "32", "--arch", "resnet",
            "--pose-scale", "torso_clipped", "--export", str(tmp_path / "m.safetensors")]
    assert people.main(argv) == 0
    card = (tmp_path / "m.md").read_text()
    assert "32x32 RGB person-centred crop" in card and "ResNet-18-style" in card


def test_a_box_that_misses_a_labelled_joint_grows_to_hold_it(person):
    # a box from the visible figure can leave out a hidden shoulder: the crop must still label every joint
    from dmlkit.data.people.augment import PersonCrops
    from dmlkit.data.people.distance import is_valid_pose

    kp = np.asarray(person.keypoints, dtype=np.float64)
    x, y, w, h = _box(kp)
    hips = [KEYPOINT_NAMES.index("left_hip"), KEYPOINT_NAMES.index("right_hip")]
    top = kp[hips, 1].max() + 1  # the box holds the legs only
    short = (x, top, w, y + h - top)
    plain, k = crop_person(person.image, kp, short, 48)
    assert not is_valid_pose(k)  # the bug: the plain crop of that box drops torso joints
    crops = PersonCrops(person.image[None], kp[None], [short], 48)
    bx, by, bw, bh = crops.boxes[0]
    labelled = kp[kp[:, 2] > 0]
    assert (labelled[:, 0] >= bx).all() and (labelled[:, 0] < bx + bw).all()
    assert (labelled[:, 1] >= by).all() and (labelled[:, 1] < by + bh).all()
    _, fixed = crops.fixed([0])
    assert is_valid_pose(fixed[0]) and (fixed[0][:, 2] > 0).sum() == len(labelled)
    _, jittered = crops.batch([0] * 16)
    assert all(is_valid_pose(j) for j in jittered)
