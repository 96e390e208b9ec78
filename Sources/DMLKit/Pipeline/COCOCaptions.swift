import Foundation

/// Reads COCO caption files (`{"annotations": [{"image_id", "caption"}, …]}`).
public enum COCOCaptions {
    /// Captions per image id, in file order, trimmed; an entry without an integer `image_id` or with an empty caption
    /// is refused with its index.
    public static func read(contentsOf url: URL) throws -> [Int64: [String]] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PipelineError("\(url.path): cannot read (\(error.localizedDescription))")
        }
        return try parse(data, source: url.path)
    }

    /// Captions per image id from the bytes of a captions file; `source` names it in errors.
    public static func parse(_ data: Data, source: String = "captions") throws -> [Int64: [String]] {
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let annotations = root["annotations"] as? [Any]
        else { throw PipelineError("\(source): not a COCO captions file (no 'annotations' list)") }
        var captions: [Int64: [String]] = [:]
        for (i, entry) in annotations.enumerated() {
            guard let entry = entry as? [String: Any], let imageID = (entry["image_id"] as? NSNumber)?.int64Value,
                  let text = entry["caption"] as? String, !text.trimmingCharacters(in: .whitespaces).isEmpty
            else { throw PipelineError("\(source): annotations[\(i)] needs an integer 'image_id' and a non-empty 'caption'") }
            captions[imageID, default: []].append(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return captions
    }
}
