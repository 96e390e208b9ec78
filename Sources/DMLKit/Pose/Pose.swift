import Foundation

/// Why a pose or a pose distance is not defined.
public enum PoseError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Not 17 keypoints of `[x, y, v]`, a non-finite number, or a visibility flag other than 0, 1, 2.
    case invalidKeypoints(String)
    /// A hip or shoulder is unlabelled (v = 0); the pose has no centre or scale.
    case missingReferenceJoint([String])
    /// Shoulder midpoint and hip midpoint coincide.
    case zeroTorso(Double)
    /// The poses share fewer labelled joints than `Pose.minimumSharedJoints`.
    case tooFewSharedJoints(Int)

    public var description: String {
        switch self {
        case .invalidKeypoints(let why): return "invalid keypoints: \(why)"
        case .missingReferenceJoint(let names):
            return "pose distance needs both hips and both shoulders; unlabelled: \(names.joined(separator: ", "))"
        case .zeroTorso(let t): return "torso length (shoulder midpoint to hip midpoint) is \(t), must be > \(Pose.minimumTorsoLength)"
        case .tooFewSharedJoints(let n):
            return "poses share \(n) labelled joints, pose distance needs at least \(Pose.minimumSharedJoints)"
        }
    }
}

/// A COCO-17 person pose: 17 keypoints `[x, y, v]` in image coordinates (y down).
/// v: 0 absent (not labelled), 1 labelled but occluded, 2 visible.
public struct Pose: Sendable, Equatable, Codable {
    /// One keypoint.
    public struct Keypoint: Sendable, Equatable, Codable {
        public var x: Double
        public var y: Double
        /// 0 absent, 1 occluded, 2 visible.
        public var visibility: Int
        public var isLabelled: Bool { visibility > 0 }

        public init(x: Double, y: Double, visibility: Int) {
            self.x = x
            self.y = y
            self.visibility = visibility
        }
    }

    /// COCO's joint order.
    public static let jointNames = [
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
        "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle",
    ]
    /// For each joint, its left-right partner (the nose is its own).
    public static let mirrorIndex = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    public static let jointCount = 17
    /// Fewest joints two poses must both have labelled for a distance: the four torso joints and one more.
    public static let minimumSharedJoints = 5
    public static let minimumTorsoLength = 1e-6
    /// Farthest a labelled joint may lie from the hip midpoint, in torso lengths. Real poses stay within a few;
    /// beyond this the torso is degenerate or a coordinate is garbage (e.g. 1e73 in a crafted file), and the
    /// label vector (Float) or the pose-index distances (squared in Float) would overflow to infinity.
    public static let maximumNormalizedCoordinate = 1e6
    static let leftShoulder = 5, rightShoulder = 6, leftHip = 11, rightHip = 12

    public var keypoints: [Keypoint]

    /// A pose from 17 keypoints, validated.
    public init(keypoints: [Keypoint]) throws {
        guard keypoints.count == Self.jointCount else {
            throw PoseError.invalidKeypoints("expected \(Self.jointCount) keypoints, got \(keypoints.count)")
        }
        for (j, k) in keypoints.enumerated() {
            guard k.x.isFinite, k.y.isFinite else { throw PoseError.invalidKeypoints("\(Self.jointNames[j]) is not a finite number") }
            guard (0...2).contains(k.visibility) else {
                throw PoseError.invalidKeypoints("visibility flags must be 0, 1 or 2, got \(k.visibility) for \(Self.jointNames[j])")
            }
        }
        self.keypoints = keypoints
    }

    /// A pose from COCO's flat list `[x1, y1, v1, x2, y2, v2, …]` of 51 numbers.
    public init(coco values: [Double]) throws {
        guard values.count == Self.jointCount * 3 else {
            throw PoseError.invalidKeypoints("expected \(Self.jointCount * 3) numbers ([x, y, v] x 17), got \(values.count)")
        }
        var keypoints: [Keypoint] = []
        for j in 0..<Self.jointCount {
            let v = values[3 * j + 2]
            guard v.isFinite, v == v.rounded(), (0...2).contains(v) else {
                throw PoseError.invalidKeypoints("visibility flags must be 0, 1 or 2, got \(v) for \(Self.jointNames[j])")
            }
            keypoints.append(Keypoint(x: values[3 * j], y: values[3 * j + 1], visibility: Int(v)))
        }
        try self.init(keypoints: keypoints)
    }

    /// The flat COCO list of 51 numbers.
    public var cocoValues: [Double] { keypoints.flatMap { [$0.x, $0.y, Double($0.visibility)] } }

    /// Number of labelled joints (v > 0).
    public var labelledCount: Int { keypoints.filter(\.isLabelled).count }

    /// The pose in its own frame: centred on the hip midpoint, divided by the torso length.
    public func normalized() throws -> NormalizedPose {
        try NormalizedPose(self)
    }

    /// The one pose distance of the project (same as `training/dmlkit/data/people/distance.py`, tested on
    /// `Tests/Fixtures/pose/pose_distance_cases.json`):
    ///
    /// 1. A joint is labelled when v > 0 (occluded joints count: their position is annotated).
    /// 2. Each pose needs both hips and both shoulders labelled; its centre is the hip midpoint h, its torso
    ///    length t = |s − h| with s the shoulder midpoint, and t > 1e-6.
    /// 3. Joints are normalised per pose: q = (p − h) / t (x, y; rotation is kept: lying ≠ standing).
    /// 4. d(a, b) = mean over joints labelled in both of |q_a − q_b|; at least 5 shared joints.
    /// 5. With `mirror`, min(d(a, b), d(a, mirror(b))), mirror swapping left/right joints and negating x;
    ///    an orientation with too few shared joints is skipped, and if both are, it is an error.
    /// 6. A pose whose torso length is not finite, or with a labelled joint more than
    ///    `maximumNormalizedCoordinate` torso lengths from the hip midpoint, is refused (`invalidKeypoints`);
    ///    the Python definition has no such bound, but no real pose comes near it.
    ///
    /// The result is in torso lengths, symmetric, and zero for identical poses.
    public static func distance(_ a: Pose, _ b: Pose, mirror: Bool = false) throws -> Double {
        try a.normalized().distance(to: b.normalized(), mirror: mirror)
    }
}

/// A pose centred on its hip midpoint and scaled by its torso length: the pose label DMLKit compares.
public struct NormalizedPose: Sendable, Equatable {
    /// Normalised x, y per joint (0 where unlabelled).
    public let x: [Double]
    public let y: [Double]
    public let labelled: [Bool]

    init(_ pose: Pose) throws {
        let k = pose.keypoints
        let reference = [Pose.leftHip, Pose.rightHip, Pose.leftShoulder, Pose.rightShoulder]
        let missing = reference.filter { !k[$0].isLabelled }.map { Pose.jointNames[$0] }
        guard missing.isEmpty else { throw PoseError.missingReferenceJoint(missing) }
        let hx = (k[Pose.leftHip].x + k[Pose.rightHip].x) / 2, hy = (k[Pose.leftHip].y + k[Pose.rightHip].y) / 2
        let sx = (k[Pose.leftShoulder].x + k[Pose.rightShoulder].x) / 2
        let sy = (k[Pose.leftShoulder].y + k[Pose.rightShoulder].y) / 2
        let torso = ((sx - hx) * (sx - hx) + (sy - hy) * (sy - hy)).squareRoot()
        guard torso > Pose.minimumTorsoLength else { throw PoseError.zeroTorso(torso) }
        // Finite coordinates can still overflow here (1e308 - (-1e308)): refused, as are absurd distances.
        guard torso.isFinite else { throw PoseError.invalidKeypoints("the torso length overflows (coordinates too large)") }
        labelled = k.map(\.isLabelled)
        x = k.map { $0.isLabelled ? ($0.x - hx) / torso : 0 }
        y = k.map { $0.isLabelled ? ($0.y - hy) / torso : 0 }
        for j in 0..<Pose.jointCount where labelled[j] {
            // Written so that NaN (inf - inf) fails too.
            guard abs(x[j]) <= Pose.maximumNormalizedCoordinate, abs(y[j]) <= Pose.maximumNormalizedCoordinate else {
                throw PoseError.invalidKeypoints("\(Pose.jointNames[j]) lies more than \(Pose.maximumNormalizedCoordinate) "
                    + "torso lengths from the hip midpoint (torso length \(torso))")
            }
        }
    }

    private init(x: [Double], y: [Double], labelled: [Bool]) {
        self.x = x
        self.y = y
        self.labelled = labelled
    }

    /// Left and right swapped, x negated.
    public var mirrored: NormalizedPose {
        NormalizedPose(x: Pose.mirrorIndex.map { -x[$0] }, y: Pose.mirrorIndex.map { y[$0] },
                       labelled: Pose.mirrorIndex.map { labelled[$0] })
    }

    /// Length of `labelVector`: x and y per joint.
    public static let labelVectorLength = 2 * Pose.jointCount

    /// 34 numbers (x, y per joint, zeros where unlabelled): the vector a pose-label FAISS index stores.
    /// Its L2 distance only approximates the pose distance; results are re-ranked with `distance(to:)`.
    public var labelVector: [Float] { (0..<Pose.jointCount).flatMap { [Float(x[$0]), Float(y[$0])] } }

    /// The pose distance (see `Pose.distance`).
    public func distance(to other: NormalizedPose, mirror: Bool = false) throws -> Double {
        let (direct, shared) = meanShared(other)
        var best = direct
        var bestShared = shared
        if mirror {
            let (flipped, flippedShared) = meanShared(other.mirrored)
            if let f = flipped, best.map({ f < $0 }) ?? true {
                best = f
                bestShared = flippedShared
            }
        }
        guard let best else { throw PoseError.tooFewSharedJoints(bestShared) }
        return best
    }

    private func meanShared(_ other: NormalizedPose) -> (Double?, Int) {
        var sum = 0.0, shared = 0
        for j in 0..<Pose.jointCount where labelled[j] && other.labelled[j] {
            let dx = x[j] - other.x[j], dy = y[j] - other.y[j]
            sum += (dx * dx + dy * dy).squareRoot()
            shared += 1
        }
        return shared >= Pose.minimumSharedJoints ? (sum / Double(shared), shared) : (nil, shared)
    }
}
