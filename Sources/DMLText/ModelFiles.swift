import DMLRuntime
import Foundation

/// One JSON file of a Hugging Face model directory, read into `JSONValue` so errors name the file and key.
struct JSONFile {
    let name: String
    let object: [String: JSONValue]

    /// Reads `directory/name`; nil when the file does not exist and `required` is false.
    static func load(_ name: String, in directory: URL, required: Bool) throws -> JSONFile? {
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            if required { throw TextModelError.missingFile(name) }
            return nil
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TextModelError.unreadableFile(path: name, reason: "cannot open")
        }
        let parsed: JSONValue
        do { parsed = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw TextModelError.unreadableFile(path: name, reason: "not valid JSON")
        }
        guard case let .object(object) = parsed else { throw TextModelError.unreadableFile(path: name, reason: "not a JSON object") }
        return JSONFile(name: name, object: object)
    }

    /// The value of `key`, nil when absent or null.
    private func value(_ key: String) -> JSONValue? {
        guard let value = object[key], value != .null else { return nil }
        return value
    }

    func int(_ key: String) throws -> Int? {
        switch value(key) {
        case nil: return nil
        case let .int(i)?: return i
        case let .double(d)? where d.rounded() == d && abs(d) < 9e15: return Int(d)
        default: throw TextModelError.invalidConfig(file: name, key: key, reason: "must be an integer")
        }
    }

    func double(_ key: String) throws -> Double? {
        switch value(key) {
        case nil: return nil
        case let .int(i)?: return Double(i)
        case let .double(d)?: return d
        default: throw TextModelError.invalidConfig(file: name, key: key, reason: "must be a number")
        }
    }

    func bool(_ key: String) throws -> Bool? {
        switch value(key) {
        case nil: return nil
        case let .bool(b)?: return b
        default: throw TextModelError.invalidConfig(file: name, key: key, reason: "must be true or false")
        }
    }

    func string(_ key: String) throws -> String? {
        switch value(key) {
        case nil: return nil
        case let .string(s)?: return s
        default: throw TextModelError.invalidConfig(file: name, key: key, reason: "must be a string")
        }
    }

    /// A token given as a string or as `{"content": ...}` (newer `transformers` files).
    func token(_ key: String) throws -> String? {
        switch value(key) {
        case nil: return nil
        case let .string(s)?: return s
        case let .object(o)?:
            if case let .string(s)? = o["content"] { return s }
            fallthrough
        default: throw TextModelError.invalidConfig(file: name, key: key, reason: "must be a token string")
        }
    }
}
