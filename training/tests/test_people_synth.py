"""Synthetic people: determinism, kinematics and joint limits, projection vs. image, visibility, captions."""

import math

import numpy as np
import pytest

from dmlkit.data.people import sample_person
from dmlkit.data.people.activities import ACTIVITIES, ARM_POSES, sample_pose
from dmlkit.data.people.camera import Camera
from dmlkit.data.people.captions import caption, view_name
from dmlkit.data.people.keypoints import INDEX
from dmlkit.data.people.render import rasterize_capsules
from dmlkit.data.people.skeleton import JOINT_LIMITS, BodyShape, clip_to_limits, forward_kinematics, neutral_angles
from dmlkit.data.people.synth import SELF_OCCLUSION_TOLERANCE, keypoint_visibility

SIZE = 48


@pytest.fixture(scope="module")
def samples():
    return [sample_person(np.random.default_rng([11, i]), SIZE) for i in range(60)]


def test_same_seed_same_sample_and_different_seeds_differ():
    a, b, c = sample_person(5, SIZE), sample_person(5, SIZE), sample_person(6, SIZE)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints) and a.caption == b.caption
    assert not np.array_equal(a.image, c.image)
    assert a.image.shape == (SIZE, SIZE, 3) and a.image.dtype == np.uint8


def test_size_below_minimum_is_rejected():
    with pytest.raises(ValueError, match="size"):
        sample_person(0, 8)


def test_sampled_angles_respect_joint_limits():
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(400):
        spec = sample_pose(rng)
        seen.add(spec.activity)
        for name, value in spec.angles.items():
            lo, hi = JOINT_LIMITS[name]
            assert lo <= value <= hi, (spec.activity, name, value)
    assert seen == set(ACTIVITIES)


def test_clip_to_limits_clips_and_rejects_unknown_joints():
    out = clip_to_limits({"l_knee": -20.0, "r_elbow": 400.0})
    assert out["l_knee"] == JOINT_LIMITS["l_knee"][0] and out["r_elbow"] == JOINT_LIMITS["r_elbow"][1]
    with pytest.raises(ValueError, match="unknown"):
        clip_to_limits({"tail_wag": 3.0})


def _angle(u, v):
    c = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
    return math.degrees(math.acos(np.clip(c, -1, 1)))


def test_forward_kinematics_keeps_bone_lengths_and_joint_angles_within_limits():
    rng = np.random.default_rng(4)
    for _ in range(150):
        spec, shape = sample_pose(rng), BodyShape.random(rng)
        body = forward_kinematics(spec.angles, shape, lift=spec.lift, seat=spec.seat)
        p = body.points
        for side in ("left", "right"):
            s = side[0]
            assert np.linalg.norm(p[f"{side}_knee"] - p[f"{side}_hip"]) == pytest.approx(shape.thigh * shape.height)
            assert np.linalg.norm(p[f"{side}_ankle"] - p[f"{side}_knee"]) == pytest.approx(shape.shin * shape.height)
            upper_arm = np.linalg.norm(p[f"{side}_elbow"] - p[f"{side}_shoulder"])
            assert upper_arm == pytest.approx(shape.upper_arm * shape.height)
            # the geometric bend between the two bones is the flexion angle
            knee = _angle(p[f"{side}_knee"] - p[f"{side}_hip"], p[f"{side}_ankle"] - p[f"{side}_knee"])
            elbow = _angle(p[f"{side}_elbow"] - p[f"{side}_shoulder"], p[f"{side}_wrist"] - p[f"{side}_elbow"])
            assert knee == pytest.approx(spec.angles[f"{s}_knee"], abs=1e-6)
            assert knee <= JOINT_LIMITS[f"{s}_knee"][1] + 1e-6
            assert elbow == pytest.approx(spec.angles[f"{s}_elbow"], abs=1e-6)
            assert elbow <= JOINT_LIMITS[f"{s}_elbow"][1] + 1e-6
        # nothing goes through the floor; a jump leaves it, everything else touches it
        assert body.lowest_surface() == pytest.approx(spec.lift, abs=1e-9)


def test_neutral_pose_is_upright_with_left_on_plus_x():
    body = forward_kinematics(neutral_angles())
    p = body.points
    assert p["left_shoulder"][0] > 0 > p["right_shoulder"][0]
    assert p["head"][1] > p["chest"][1] > p["pelvis"][1] > p["left_knee"][1] > p["left_ankle"][1]
    assert p["nose"][2] > p["head"][2]  # faces +z


def test_lying_puts_the_body_horizontal():
    for variant in ("back", "front", "left_side", "right_side"):
        spec = sample_pose(np.random.default_rng(1), "lying", variant)
        p = forward_kinematics(spec.angles).points
        torso = p["chest"] - p["pelvis"]
        assert abs(torso[1]) < 0.35 * np.linalg.norm(torso), variant


def test_arm_poses_put_the_hands_where_their_names_say():
    rng = np.random.default_rng(8)
    for _ in range(20):
        p = forward_kinematics(sample_pose(rng, "standing", arms="both_raised").angles).points
        assert p["left_wrist"][1] > p["head"][1] and p["right_wrist"][1] > p["head"][1]
        p = forward_kinematics(sample_pose(rng, "standing", arms="crossed").angles).points
        assert p["left_wrist"][0] < p["left_shoulder"][0] - 0.1 and p["right_wrist"][0] > p["right_shoulder"][0] + 0.1
        assert p["left_wrist"][2] > 0.05  # in front of the chest
        p = forward_kinematics(sample_pose(rng, "standing", arms="out").angles).points
        assert p["left_wrist"][0] > p["left_shoulder"][0] + 0.3 and p["right_wrist"][0] < p["right_shoulder"][0] - 0.3


def test_visible_joints_land_on_the_figure(samples):
    """With a flat background and no occluders, a visible joint's pixel shows the person."""
    bg = np.array([255, 0, 255])
    checked = 0
    for i in range(40):
        s = sample_person(np.random.default_rng([12, i]), SIZE, occluders=False, plain_background=(1.0, 0.0, 1.0))
        for x, y, v in s.keypoints:
            if v == 2:
                assert not np.array_equal(s.image[int(y), int(x)], bg), (i, x, y)
                checked += 1
    assert checked > 300


def test_labelled_joints_lie_inside_the_figure_bounding_box(samples):
    for s in samples:
        ys, xs = np.nonzero(s.figure_mask | (s.occluder_coverage > 0))
        lab = s.keypoints[s.keypoints[:, 2] > 0]
        if len(xs) == 0:
            continue
        assert (lab[:, 0] >= xs.min() - 2).all() and (lab[:, 0] <= xs.max() + 3).all()
        assert (lab[:, 1] >= ys.min() - 2).all() and (lab[:, 1] <= ys.max() + 3).all()


def test_out_of_frame_joints_are_unlabelled_and_in_frame_joints_are_labelled(samples):
    truncated = 0
    for s in samples:
        uvz = s.camera.project(s.body.keypoints3d)
        inside = (uvz[:, 0] >= 0) & (uvz[:, 0] < SIZE) & (uvz[:, 1] >= 0) & (uvz[:, 1] < SIZE)
        assert np.array_equal(s.keypoints[:, 2] > 0, inside)
        assert (s.keypoints[~inside, :2] == 0).all()
        assert np.allclose(s.keypoints[inside, :2], uvz[inside, :2])
        truncated += int((~inside).any())
    assert truncated >= 2, "the generator should crop some people"


def test_torso_stays_in_frame_so_every_sample_has_a_pose_reference(samples):
    for s in samples:
        assert (s.keypoints[[5, 6, 11, 12], 2] > 0).all()


def test_joints_under_an_occluder_are_not_visible(samples):
    with_occluders = 0
    for s in samples:
        if s.occluder_coverage.max() == 0:
            continue
        with_occluders += 1
        for x, y, v in s.keypoints:
            if v > 0 and s.occluder_coverage[int(y), int(x)] == 1.0:
                assert v == 1
    assert with_occluders >= 5


def _render_neutral(yaw):
    body = forward_kinematics(neutral_angles())
    cam = Camera(yaw=yaw, pitch=5.0, distance=4.0, target=(0.0, 0.9, 0.0), focal=60.0, cx=32.0, cy=32.0)
    raster = rasterize_capsules(cam, body.p0, body.p1, body.r0, body.r1, 64, 2)
    none = np.zeros(raster.depth.shape, dtype=bool)
    return keypoint_visibility(body, cam, raster, none, 64, 2, SELF_OCCLUSION_TOLERANCE)


def test_self_occlusion_depends_on_the_view():
    front, back, left = _render_neutral(0.0), _render_neutral(180.0), _render_neutral(90.0)
    face = [INDEX[n] for n in ("nose", "left_eye", "right_eye")]
    assert (front[face, 2] == 2).all()
    assert (back[face, 2] == 1).all()  # the back of the head hides the face
    assert (back[[INDEX["left_shoulder"], INDEX["right_shoulder"]], 2] == 2).all()
    # camera on the person's left: the left ear shows, the right ear and right hip are behind the body
    assert left[INDEX["left_ear"], 2] == 2 and left[INDEX["right_ear"], 2] == 1
    assert left[INDEX["left_hip"], 2] == 2 and left[INDEX["right_hip"], 2] == 1


def test_front_view_shows_left_side_on_the_image_right():
    k = _render_neutral(0.0)
    assert k[INDEX["left_shoulder"], 0] > k[INDEX["right_shoulder"], 0]
    k = _render_neutral(180.0)
    assert k[INDEX["left_shoulder"], 0] < k[INDEX["right_shoulder"], 0]


ACTIVITY_WORDS = {"standing": ("stand",), "walking": ("walk",), "running": ("run", "jog"),
                  "sitting": ("sit", "seated"), "squatting": ("squat", "crouch"), "kneeling": ("knee",),
                  "lying": ("lying",), "jumping": ("jump", "leap"), "reaching": ("reach",),
                  "bending": ("bend",)}


@pytest.mark.parametrize("activity", ACTIVITIES)
def test_captions_mention_the_activity(activity):
    rng = np.random.default_rng(hash(activity) % 2**32)
    for _ in range(15):
        spec = sample_pose(rng, activity)
        text = caption(rng, spec.activity, spec.variant, spec.arms, rng.uniform(-180, 180), 10.0, ("red", "blue"))
        assert any(w in text.lower() for w in ACTIVITY_WORDS[activity]), text


def test_captions_name_the_view_and_raised_arm():
    rng = np.random.default_rng(0)
    for yaw, words in ((0, ("front", "facing")), (180, ("behind", "back")), (90, ("left",)), (-90, ("right",))):
        for _ in range(5):
            text = caption(rng, "standing", "plain", "neutral", yaw, 10.0)
            assert any(w in text for w in words), (yaw, text)
    for _ in range(5):
        assert "left" in caption(rng, "kneeling", "one_knee", "left_raised", 0.0, 10.0)
    assert view_name(-90) == "right" and view_name(44) == "front_left" and view_name(-179) == "back"


def test_captions_vary_in_wording():
    rng = np.random.default_rng(1)
    texts = {caption(rng, "kneeling", "one_knee", "left_raised", -90.0, 10.0) for _ in range(40)}
    assert len(texts) >= 10


def test_every_activity_and_arm_pose_renders(samples):
    rng = np.random.default_rng(9)
    for activity in ACTIVITIES:
        s = sample_person(rng, 32, activity=activity)
        assert s.meta["activity"] == activity and s.image.std() > 5
    assert {s.meta["arms"] for s in samples} <= set(ARM_POSES)
