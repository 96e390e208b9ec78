import DMLRuntime
import DMLText
import Foundation

// Every error an app meets through DMLKit reads as its one-line `description`, also through `localizedDescription`
// (Foundation's default there is "The operation could not be completed. (… error 6.)"). DMLIndex and DMLNpy
// errors conform in their own modules.

extension ImageError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension PoseError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension SQLiteError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension CalibrationError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension EvaluationError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension SafetensorsError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension ModelError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension InferenceError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}

extension TextModelError: LocalizedError {
    /// The one-line message.
    public var errorDescription: String? { description }
}
