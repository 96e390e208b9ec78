import DMLKit
import Foundation
import Testing

/// Cases written by the Python side (`python -m dmlkit.data.people.fixtures`) from its own implementation.
private struct Fixture: Decodable {
    struct Case: Decodable {
        let name: String
        let a: [Double]
        let b: [Double]
        let expected: Outcome
        let expected_mirror: Outcome
    }
    struct Outcome: Decodable {
        let distance: Double?
        let error: String?
    }
    let keypoint_names: [String]
    let flip_index: [Int]
    let min_shared_joints: Int
    let cases: [Case]
}

private func loadFixture() throws -> Fixture {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/pose/pose_distance_cases.json")
    return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
}

/// Case names for the parameterised test; a missing fixture still yields one case, which then fails to load it.
private let caseNames = (try? loadFixture())?.cases.map(\.name) ?? ["fixture missing"]

/// The Python error kinds, in Swift.
private func kind(_ error: Error) -> String {
    switch error as? PoseError {
    case .invalidKeypoints?: return "invalid_keypoints"
    case .missingReferenceJoint?: return "missing_reference_joint"
    case .zeroTorso?: return "zero_torso"
    case .tooFewSharedJoints?: return "too_few_shared_joints"
    case nil: return "\(error)"
    }
}

@Suite struct PoseDistanceEqualsThePythonDefinition {
    @Test func jointOrderAndMirrorTableMatch() throws {
        let fixture = try loadFixture()
        #expect(Pose.jointNames == fixture.keypoint_names)
        #expect(Pose.mirrorIndex == fixture.flip_index)
        #expect(Pose.minimumSharedJoints == fixture.min_shared_joints)
    }

    @Test(arguments: caseNames)
    func sharedCase(name: String) throws {
        let c = try #require(try loadFixture().cases.first { $0.name == name })
        for (mirror, outcome) in [(false, c.expected), (true, c.expected_mirror)] {
            let result = Result { try Pose.distance(Pose(coco: c.a), Pose(coco: c.b), mirror: mirror) }
            switch (result, outcome.distance, outcome.error) {
            case (.success(let d), let expected?, nil):
                #expect(abs(d - expected) <= 1e-12, "mirror \(mirror): \(d) vs \(expected)")
            case (.failure(let error), nil, let expected?):
                #expect(kind(error) == expected, "mirror \(mirror)")
            default:
                Issue.record("mirror \(mirror): got \(result), expected \(outcome)")
            }
        }
    }
}

@Suite struct PoseProperties {
    @Test func distanceIsSymmetricAndZeroForItself() throws {
        for c in try loadFixture().cases where c.expected.distance != nil {
            let a = try Pose(coco: c.a), b = try Pose(coco: c.b)
            #expect(abs(try Pose.distance(a, b) - Pose.distance(b, a)) < 1e-12)
            #expect(try Pose.distance(a, a) == 0)
        }
    }

    @Test func labelVectorHoldsNormalisedJoints() throws {
        let standing = try Pose(coco: loadFixture().cases[0].a)
        let v = try standing.normalized().labelVector
        #expect(v.count == 34)
        // The hip midpoint is the origin, so the two hips are symmetric about it.
        #expect(abs(v[2 * 11] + v[2 * 12]) < 1e-6 && abs(v[2 * 11 + 1] + v[2 * 12 + 1]) < 1e-6)
    }

    @Test func malformedKeypointsAreRefused() throws {
        let standing = try Pose(coco: loadFixture().cases[0].a)
        #expect(throws: PoseError.self) { try Pose(coco: [1, 2, 3]) }
        var values = standing.cocoValues
        values[4] = .nan
        #expect(throws: PoseError.self) { try Pose(coco: values) }
        values = standing.cocoValues
        values[2] = 1.5
        #expect(throws: PoseError.self) { try Pose(coco: values) }
    }
}

/// Inputs found by `Fuzz/` (fuzz-coco), committed under `Tests/Fixtures/pose/fuzz`.
@Suite struct PoseFuzzRegressions {
    private func fixture(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/pose/fuzz/\(name)")
    }

    /// A left ankle at x = 8.9e38 parsed and normalised to a finite Double, but its label vector (Float) held
    /// infinity: the pose index refuses that only after the store has committed, and every rebuild fails again.
    @Test func jointFarBeyondTheTorsoIsRefused() throws {
        let people = try COCOKeypoints.parse(Data(contentsOf: fixture("coco_huge_ankle.json")))
        #expect(people.count == 1)
        let error = #expect(throws: PoseError.self) { try people[0].pose.normalized() }
        guard case .invalidKeypoints(let message)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(message.hasPrefix("left_ankle lies more than 1000000.0 torso lengths from the hip midpoint"))
        #expect(throws: GalleryError.self) { try GalleryItem(key: "a", pose: people[0].pose).validate() }
    }

    /// Hips at -1e308 and shoulders at +1e308: every coordinate is finite, the torso length is not.
    @Test func overflowingTorsoIsRefused() throws {
        var values: [Double] = []
        for j in 0..<Pose.jointCount { values += [Double(j), j == 11 || j == 12 ? -1e308 : 1e308, 2] }
        let pose = try Pose(coco: values)
        #expect(throws: PoseError.invalidKeypoints("the torso length overflows (coordinates too large)")) { try pose.normalized() }
    }

    /// The bound leaves real poses alone: a joint 1e6 torso lengths out is kept, one just past it refused.
    @Test func boundIsInclusive() throws {
        var values: [Double] = []
        for j in 0..<Pose.jointCount { values += [0, j == 5 || j == 6 ? -1 : 0, j == 0 ? 0 : 2] }
        values[3 * 0 + 2] = 2
        values[3 * 0] = 1e6  // the nose, one torso length being 1
        let normalized = try Pose(coco: values).normalized()
        #expect(normalized.x[0] == 1e6)
        #expect(normalized.labelVector.allSatisfy { $0.isFinite })
        values[3 * 0] = 1e6 + 1
        #expect(throws: PoseError.self) { try Pose(coco: values).normalized() }
    }
}
