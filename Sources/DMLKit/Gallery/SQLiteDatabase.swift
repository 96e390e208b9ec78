import CSQLite
import Foundation

/// A failed SQLite call, with SQLite's own message.
public struct SQLiteError: Error, CustomStringConvertible, Sendable {
    public let code: Int32
    public let message: String
    public var description: String { "SQLite error \(code): \(message)" }
    /// The database is locked by another connection past the busy timeout.
    public var isBusy: Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }
    /// Writing failed: disk full, I/O error, read-only file.
    public var isWriteFailure: Bool { [SQLITE_IOERR, SQLITE_FULL, SQLITE_READONLY].contains(code & 0xff) }
}

/// A value bound to or read from a statement.
enum SQLiteValue {
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)
    case null
}

/// A minimal SQLite connection: statements with bound values, rows as `SQLiteRow`, transactions.
/// One connection is used from one thread at a time (the gallery serialises access).
final class SQLiteDatabase {
    private var handle: OpaquePointer?
    /// Whether the gallery's items table has its `crop` column (nil: not looked up yet; see `GallerySchema`).
    var cropColumn: Bool?
    private let path: String

    /// Opens (creating if needed) a database file in WAL mode, so readers never block the writer.
    /// Read-only connections never create or change anything; where SQLite cannot open the WAL read-only (a
    /// read-only directory without the `-shm` file), the file is opened as immutable.
    init(path: String, readOnly: Bool = false, busyTimeout: TimeInterval = 5) throws {
        self.path = path
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var status = sqlite3_open_v2(path, &handle, flags | SQLITE_OPEN_NOMUTEX, nil)
        if status == SQLITE_OK, readOnly, sqlite3_exec(handle, "SELECT COUNT(*) FROM sqlite_master", nil, nil, nil) != SQLITE_OK {
            sqlite3_close(handle)
            handle = nil
            var uri = URLComponents()
            uri.scheme = "file"
            uri.path = path
            uri.queryItems = [URLQueryItem(name: "immutable", value: "1")]
            status = sqlite3_open_v2(uri.string ?? path, &handle, flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, nil)
        }
        guard status == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            handle = nil
            throw SQLiteError(code: status, message: "\(path): \(message)")
        }
        sqlite3_busy_timeout(handle, Int32(clamping: Int((busyTimeout * 1000).rounded())))
        sqlite3_extended_result_codes(handle, 1)
        // Fails fast, naming the file, on a file that is not a database (header) or whose schema page is unreadable.
        // A full check reads the whole file, so it is `quickCheck()`, run where its cost is small next to the work
        // (index rebuilds) or asked for; a corrupt page met later fails its query with SQLITE_CORRUPT.
        do {
            try execute("SELECT COUNT(*) FROM sqlite_master")
        } catch let error as SQLiteError {
            throw SQLiteError(code: error.code, message: "\(path): \(error.message)")
        }
        if !readOnly {
            try execute("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=FULL")
        }
        try execute("PRAGMA foreign_keys=ON")
    }

    /// `PRAGMA quick_check`: every page and index of the file (not the index contents against the tables).
    func quickCheck() throws {
        let rows: [SQLiteRow]
        do {
            rows = try query("PRAGMA quick_check")
        } catch let error as SQLiteError where [SQLITE_CORRUPT, SQLITE_NOTADB].contains(error.code & 0xff) {
            // Damage the check cannot step past.
            throw SQLiteError(code: error.code, message: "\(path): integrity check failed: \(String(cString: sqlite3_errstr(error.code)))")
        }
        if let first = rows.first?.text(0), first != "ok" {
            throw SQLiteError(code: SQLITE_CORRUPT, message: "\(path): integrity check failed: \(first)")
        }
    }

    deinit { sqlite3_close_v2(handle) }

    private func error(_ status: Int32, _ context: String) -> SQLiteError {
        SQLiteError(code: status, message: "\(context): \(String(cString: sqlite3_errmsg(handle)))")
    }

    /// Runs one or more statements without results.
    func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let status = sqlite3_exec(handle, sql, nil, nil, &message)
        if status != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "failed"
            sqlite3_free(message)
            throw SQLiteError(code: status, message: text)
        }
    }

    /// Runs a statement with bound values and returns all rows.
    @discardableResult
    func query(_ sql: String, _ values: [SQLiteValue] = []) throws -> [SQLiteRow] {
        var statement: OpaquePointer?
        let prepared = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK else { throw error(prepared, "prepare \(sql.prefix(60))") }
        defer { sqlite3_finalize(statement) }
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            let status: Int32
            switch value {
            case .integer(let v): status = sqlite3_bind_int64(statement, index, v)
            case .real(let v): status = sqlite3_bind_double(statement, index, v)
            case .text(let v): status = sqlite3_bind_text(statement, index, v, -1, SQLITE_TRANSIENT)
            case .blob(let v):
                status = v.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT) }
            case .null: status = sqlite3_bind_null(statement, index)
            }
            guard status == SQLITE_OK else { throw error(status, "bind") }
        }
        var rows: [SQLiteRow] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { break }
            guard status == SQLITE_ROW else { throw error(status, "step \(sql.prefix(60))") }
            rows.append(SQLiteRow(statement: statement))
        }
        return rows
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Whether the connection can only read.
    var isReadOnly: Bool { sqlite3_db_readonly(handle, "main") == 1 }
}

/// SQLite's destructor constant telling it to copy bound data.
private let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One result row, copied out of the statement.
struct SQLiteRow {
    private let values: [SQLiteValue]

    init(statement: OpaquePointer?) {
        values = (0..<sqlite3_column_count(statement)).map { i in
            switch sqlite3_column_type(statement, i) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, i))
            case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, i))
            case SQLITE_TEXT: return .text(String(cString: sqlite3_column_text(statement, i)))
            case SQLITE_BLOB:
                let count = Int(sqlite3_column_bytes(statement, i))
                guard count > 0, let bytes = sqlite3_column_blob(statement, i) else { return .blob(Data()) }
                return .blob(Data(bytes: bytes, count: count))
            default: return .null
            }
        }
    }

    func int(_ i: Int) -> Int64? { if case .integer(let v) = values[i] { return v } else { return nil } }
    func text(_ i: Int) -> String? { if case .text(let v) = values[i] { return v } else { return nil } }
    func blob(_ i: Int) -> Data? { if case .blob(let v) = values[i] { return v } else { return nil } }
    func real(_ i: Int) -> Double? {
        switch values[i] {
        case .real(let v): return v
        case .integer(let v): return Double(v)
        default: return nil
        }
    }
}
