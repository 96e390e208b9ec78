import DMLKit
import Foundation
import FuzzSupport

/// COCO person-keypoint JSON through `COCOKeypoints.parse`, then what the gallery does with each person: normalise
/// the pose, compare it with itself and its neighbour (both orientations) and build its label vector.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCOCO(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = fuzzData(start, count)
    guard let people = try? COCOKeypoints.parse(data) else { return 0 }
    var previous: NormalizedPose?
    for person in people.prefix(64) {
        let pose = person.pose
        invariant(pose.labelledCount > 0, "a person without labelled joints was returned")
        invariant((try? Pose(coco: pose.cocoValues)) == pose, "the COCO values of a parsed pose do not parse back")
        guard let normalized = try? pose.normalized() else { continue }
        invariant(normalized.x.allSatisfy(\.isFinite) && normalized.y.allSatisfy(\.isFinite),
                  "normalised joints are not finite: \(normalized.x) \(normalized.y)")
        invariant(normalized.labelVector.allSatisfy(\.isFinite), "label vector is not finite")
        if let d = try? normalized.distance(to: normalized) { invariant(d == 0, "distance to itself is \(d)") }
        if let other = previous {
            let ab = try? normalized.distance(to: other), ba = try? other.distance(to: normalized)
            invariant(ab == ba, "distance is not symmetric: \(String(describing: ab)) vs \(String(describing: ba))")
            if let ab { invariant(ab.isFinite && ab >= 0, "distance \(ab)") }
            if let m = try? normalized.distance(to: other, mirror: true) {
                invariant(m.isFinite && m >= 0, "mirrored distance \(m)")
                if let ab { invariant(m <= ab, "mirrored distance \(m) above the direct one \(ab)") }
            }
        }
        previous = normalized
    }
    return 0
}
