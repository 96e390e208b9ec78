import Foundation

/// One person annotation from a COCO person-keypoints file, joined with its image.
public struct COCOPerson: Sendable, Equatable {
    public var annotationID: Int64
    public var imageID: Int64
    public var fileName: String
    public var width: Int?
    public var height: Int?
    public var pose: Pose
    /// x, y, width, height.
    public var bbox: [Double]?
}

/// Reads COCO person-keypoint annotation files (`person_keypoints_*.json`): the official ones and those the
/// synthetic generator in `training/` writes. Unknown fields are ignored.
public enum COCOKeypoints {
    private struct File: Decodable {
        struct Image: Decodable {
            let id: Int64
            let file_name: String
            let width: Int?
            let height: Int?
        }
        struct Annotation: Decodable {
            let id: Int64
            let image_id: Int64
            let keypoints: [Double]?
            let bbox: [Double]?
        }
        let images: [Image]
        let annotations: [Annotation]
    }

    /// People with keypoints, in file order. Annotations without keypoints (or with none labelled) are skipped.
    public static func parse(_ data: Data, source: String = "annotations") throws -> [COCOPerson] {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw PoseError.invalidKeypoints("\(source): missing '\(key.stringValue)' at \(path(context))")
        } catch let DecodingError.typeMismatch(_, context) {
            throw PoseError.invalidKeypoints("\(source): wrong type at \(path(context))")
        } catch {
            throw PoseError.invalidKeypoints("\(source): not a COCO keypoints JSON file (\(error.localizedDescription))")
        }
        var images: [Int64: File.Image] = [:]
        for image in file.images { images[image.id] = image }
        var people: [COCOPerson] = []
        for annotation in file.annotations {
            guard let values = annotation.keypoints else { continue }
            guard let image = images[annotation.image_id] else {
                throw PoseError.invalidKeypoints("\(source): annotation \(annotation.id) refers to unknown image \(annotation.image_id)")
            }
            let pose: Pose
            do {
                pose = try Pose(coco: values)
            } catch let error as PoseError {
                throw PoseError.invalidKeypoints("\(source): annotation \(annotation.id): \(error)")
            }
            guard pose.labelledCount > 0 else { continue }
            people.append(COCOPerson(annotationID: annotation.id, imageID: image.id, fileName: image.file_name,
                                     width: image.width, height: image.height, pose: pose, bbox: annotation.bbox))
        }
        return people
    }

    /// Reads and parses a file.
    public static func read(contentsOf url: URL) throws -> [COCOPerson] {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw PoseError.invalidKeypoints("cannot read \(url.path): \(error.localizedDescription)")
        }
        return try parse(data, source: url.lastPathComponent)
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
