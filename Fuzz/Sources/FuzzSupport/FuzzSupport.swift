import Foundation

/// The fuzzer's input as `Data` (libFuzzer may pass a null pointer for an empty input).
public func fuzzData(_ start: UnsafePointer<UInt8>?, _ count: Int) -> Data {
    guard let start, count > 0 else { return Data() }
    return Data(bytes: start, count: count)
}

/// Stops the process (a finding) when an invariant of a successful read does not hold: libFuzzer records the input.
/// Thrown errors are not findings; wrong results after a successful read are.
public func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                      file: StaticString = #fileID, line: UInt = #line) {
    if !condition() { fatalError("invariant failed: \(message())", file: file, line: line) }
}

/// Reads an environment variable as a path, or a default relative to the working directory.
public func environmentPath(_ name: String, default fallback: String) -> URL {
    URL(fileURLWithPath: ProcessInfo.processInfo.environment[name] ?? fallback)
}

/// With `DML_FUZZ_WRITE_SEEDS=DIR` in the environment, a harness writes its seed inputs (made by the project's own
/// writers) into DIR and exits instead of fuzzing: `Fuzz/make-corpus.sh` uses it. Call from `LLVMFuzzerInitialize`.
public func writeSeedsIfRequested(_ write: (_ save: (String, Data) throws -> Void) throws -> Void) {
    guard let path = ProcessInfo.processInfo.environment["DML_FUZZ_WRITE_SEEDS"] else { return }
    let directory = URL(fileURLWithPath: path, isDirectory: true)
    do {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try write { name, data in try data.write(to: directory.appendingPathComponent(name)) }
    } catch {
        fatalError("writing seeds into \(path) failed: \(error)")
    }
    exit(0)
}
