import Foundation

/// Why a pipeline call (building, adding, searching, evaluating, loading a model) failed: one line for people,
/// naming the file or model concerned and, where there is one, what to do about it.
public struct PipelineError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    /// The one-line message.
    public let description: String

    /// An error with this message.
    public init(_ description: String) { self.description = description }

    /// The same message, for `localizedDescription`.
    public var errorDescription: String? { description }
}
