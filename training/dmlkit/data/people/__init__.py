"""Synthetic and real people data: COCO-17 poses, images, captions, and the pose distance.

* :func:`sample_person` renders one synthetic person (pose, image, keypoints with visibility, caption);
  ``python -m dmlkit.data.people.generate`` writes a whole data set as PNG + COCO JSON.
* :func:`load_coco_keypoints`, :func:`load_captions` and :func:`load_people` read those files and the
  official COCO person-keypoint / caption annotations.
* :func:`pose_distance` and :func:`pose_distance_matrix` are the project's one pose distance
  (definition in :mod:`dmlkit.data.people.distance`).
"""

from .coco import PersonRecord, load_captions, load_coco_keypoints, parse_coco_keypoints
from .dataset import PeopleArrays, crop_person, load_people
from .distance import (MIN_SHARED_JOINTS, MIN_TORSO_LENGTH, PoseDistanceError, is_valid_pose, normalize_pose,
                       normalize_poses, pose_distance, pose_distance_matrix)
from .writer import generate_dataset
from .keypoints import FLIP_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS, as_keypoints, mirror_keypoints
from .synth import PersonSample, sample_person

__all__ = [
    "PersonRecord", "load_captions", "load_coco_keypoints", "parse_coco_keypoints", "PeopleArrays", "crop_person",
    "load_people", "MIN_SHARED_JOINTS", "MIN_TORSO_LENGTH", "PoseDistanceError", "is_valid_pose", "normalize_pose",
    "normalize_poses",
    "pose_distance", "pose_distance_matrix", "generate_dataset", "FLIP_INDEX", "KEYPOINT_NAMES", "NUM_KEYPOINTS",
    "as_keypoints", "mirror_keypoints", "PersonSample", "sample_person",
]
