import DMLKit
import Foundation
import Testing

private func person(_ id: Int, image: Int, shift: Double) -> String {
    let xs = (0..<17).map { j in "\(Double(j) + shift), \(Double(2 * j) + 1), \(j == 3 ? 0 : 2)" }.joined(separator: ", ")
    return #"{"id": \#(id), "image_id": \#(image), "category_id": 1, "keypoints": [\#(xs)], "num_keypoints": 16, "bbox": [1, 2, 3, 4], "iscrowd": 0}"#
}

@Suite struct ReadingCOCOPersonKeypoints {
    @Test func joinsAnnotationsWithTheirImages() throws {
        let json = """
            {"info": {"year": 2026}, "images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 64},
                                               {"id": 8, "file_name": "b.png"}],
             "annotations": [\(person(1, image: 7, shift: 0)), \(person(2, image: 8, shift: 5)),
                             {"id": 3, "image_id": 8, "category_id": 1}],
             "categories": [{"id": 1, "name": "person"}]}
            """
        let people = try COCOKeypoints.parse(Data(json.utf8))
        #expect(people.count == 2)
        #expect(people[0].fileName == "a.png" && people[0].width == 64 && people[1].height == nil)
        #expect(people[1].pose.keypoints[2] == Pose.Keypoint(x: 7, y: 5, visibility: 2))
        #expect(people[0].pose.keypoints[3].visibility == 0)
        #expect(people[0].bbox == [1, 2, 3, 4])
    }

    @Test func malformedFilesGiveAClearError() {
        let unknownImage = #"{"images": [], "annotations": [\#(person(1, image: 9, shift: 0))]}"#
        let shortKeypoints = #"{"images": [{"id": 1, "file_name": "x"}], "annotations": [{"id": 1, "image_id": 1, "keypoints": [1, 2, 2]}]}"#
        for text in [unknownImage, shortKeypoints, "{\"images\": 3}", "not json", #"{"annotations": []}"#] {
            #expect(throws: PoseError.self) { try COCOKeypoints.parse(Data(text.utf8)) }
        }
    }
}
