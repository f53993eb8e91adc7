import Foundation

/// A parsed TOML value together with the line it starts on.
public struct TOMLNode {
    public var value: TOMLValue
    /// One-based line of the value's first character in its file.
    public var line: Int
    /// Set when the value was produced by something other than the TOML file
    /// being read (AMBER namelist, command-line override).
    public var origin: ValueOrigin?
    /// True for arrays built by `[[header]]` sections, the only arrays that
    /// later headers may append to.
    var isArrayOfTables = false

    public init(value: TOMLValue, line: Int, origin: ValueOrigin? = nil) {
        self.value = value
        self.line = line
        self.origin = origin
    }
}

/// The TOML data model supported by ``TOMLParser`` (dates and times are not).
public enum TOMLValue {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    case array([TOMLNode])
    case table(TOMLTable)

    /// The word used in messages such as "must be a number (got string ...)".
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .float: return "float"
        case .boolean: return "boolean"
        case .array: return "array"
        case .table: return "table"
        }
    }

    /// A short TOML-like rendering for error messages.
    public var rendered: String {
        switch self {
        case .string(let s): return "\"" + s + "\""
        case .integer(let i): return String(i)
        case .float(let d):
            if d.isNaN { return "nan" }
            if d.isInfinite { return d < 0 ? "-inf" : "inf" }
            return String(d)
        case .boolean(let b): return b ? "true" : "false"
        case .array(let items):
            let inner = items.prefix(6).map { $0.value.rendered }.joined(separator: ", ")
            return "[" + inner + (items.count > 6 ? ", ..." : "") + "]"
        case .table: return "{...}"
        }
    }
}

/// A TOML table: keys in the order they were written, each with its node.
///
/// Tables are reference types because `[header]` sections reopen and extend
/// tables created earlier in the file.
public final class TOMLTable {
    /// How the table came into being; decides whether a later header or
    /// dotted key may define or extend it (TOML 1.0 rules).
    enum Kind: Equatable {
        /// Created as a parent of a header path such as `[a.b]` creating `a`.
        case implicit
        /// Defined by its own `[header]` or as an element of `[[header]]`.
        case header
        /// Created by a dotted key within the section numbered `section`.
        case dotted(section: Int)
        /// An inline `{ ... }` table: closed for good.
        case inline
    }

    public private(set) var keys: [String] = []
    private var storage: [String: TOMLNode] = [:]
    /// Line of the header (or first key) that created the table.
    public internal(set) var line: Int
    /// Dotted path of the table from the document root (empty for the root).
    public let path: [String]
    var kind: Kind

    init(line: Int, path: [String], kind: Kind) {
        self.line = line
        self.path = path
        self.kind = kind
    }

    /// An empty root table, for building documents in code.
    public convenience init() {
        self.init(line: 1, path: [], kind: .header)
    }

    public subscript(key: String) -> TOMLNode? {
        storage[key]
    }

    /// Inserts or replaces a value; used by the parser (after its own duplicate
    /// checks) and by overrides.
    public func set(_ key: String, _ node: TOMLNode) {
        if storage[key] == nil { keys.append(key) }
        storage[key] = node
    }

    public func remove(_ key: String) {
        guard storage.removeValue(forKey: key) != nil else { return }
        keys.removeAll { $0 == key }
    }

    /// The table's path in TOML key syntax, quoting parts that are not bare keys.
    public var dottedPath: String { TOMLTable.dotted(path) }

    static func dotted(_ parts: [String]) -> String {
        parts.map { part -> String in
            let bare = !part.isEmpty && part.utf8.allSatisfy { isBareKeyByte($0) }
            return bare ? part : "\"" + part + "\""
        }.joined(separator: ".")
    }
}

@inline(__always)
func isBareKeyByte(_ c: UInt8) -> Bool {
    (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
}
