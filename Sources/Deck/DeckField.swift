import Foundation

/// Where values are read from: the deck as the user named it, and the
/// directory relative paths are resolved against.
struct DeckContext {
    var file: String
    var baseDirectory: String
    /// True for mdin decks, whose tables are synthesised and have no line of their own.
    var synthesized: Bool
    /// For mdin decks: how to supply a missing canonical key, e.g. "structure='...' in &eninetmd".
    var missingHints: [String: String] = [:]
}

/// One value of the deck, with enough context to name it in errors.
struct DeckField {
    let node: TOMLNode
    /// Canonical dotted key, e.g. `dynamics.timestep_fs`.
    let key: String
    let context: DeckContext

    /// `'dynamics.timestep_fs'`, or `'dt' (dynamics.timestep_fs)` for a mapped AMBER key.
    var displayName: String {
        guard let origin = node.origin else { return "'\(key)'" }
        return origin.key == key ? "'\(key)'" : "'\(origin.key)' (\(key))"
    }

    var got: String { node.origin?.text ?? node.value.rendered }

    /// The key as the user wrote it, for messages about another key: `'ntwx'` for a mapped
    /// AMBER key, else the last part of the canonical key (`trajectory_every`).
    var writtenName: String {
        if let origin = node.origin, origin.key != key { return "'\(origin.key)'" }
        return String(key.split(separator: ".").last ?? Substring(key))
    }

    func error(_ message: String) -> DeckError {
        if let origin = node.origin {
            return DeckError(file: origin.file, line: origin.line, message: message)
        }
        return DeckError(file: context.file, line: node.line, message: message)
    }

    /// "key 'x' <predicate> (got v)".
    func invalid(_ predicate: String) -> DeckError {
        error("key \(displayName) \(predicate) (got \(got))")
    }

    func warning(_ message: String) -> String {
        error(message).description
    }

    // MARK: Typed reads

    func string() throws -> String {
        guard case .string(let s) = node.value else {
            throw invalid("must be a string")
        }
        // Strings name files, elements and titles. A NUL cuts a path where the operating system
        // reads it, but not where the deck's checks compare paths: `log = "in.extxyz\u0000.csv"`
        // passed the check against overwriting the structure, then wrote over it.
        if s.unicodeScalars.contains("\0") {
            throw error("key \(displayName) contains a NUL character (\\u0000), which no file name or value here can hold")
        }
        return s
    }

    func choice(_ allowed: [String]) throws -> String {
        let s = try string()
        guard allowed.contains(s) else {
            let list = allowed.map { "\"\($0)\"" }.joined(separator: ", ")
            var message = "key \(displayName) must be one of \(list) (got \(got))"
            if let near = nearest(s, in: allowed) { message += "; did you mean \"\(near)\"?" }
            throw error(message)
        }
        return s
    }

    func bool() throws -> Bool {
        guard case .boolean(let b) = node.value else {
            throw invalid("must be true or false")
        }
        return b
    }

    /// An integer; a float with an integral value is not accepted, to catch `steps = 1e4.5`-style slips early.
    func integer() throws -> Int {
        switch node.value {
        case .integer(let i):
            guard let v = Int(exactly: i) else { throw invalid("is out of range") }
            return v
        case .float:
            // An AMBER mdin numeral past Int64 arrives as a real: say what is wrong with it.
            let numeral = got.trimmingCharacters(in: .whitespaces)
            let digits = numeral.drop(while: { $0 == "+" || $0 == "-" })
            if !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) {
                throw invalid(numeral.hasPrefix("-") ? "is smaller than the smallest integer, \(Int.min)"
                                                     : "is larger than the largest integer, \(Int.max)")
            }
            throw invalid("must be an integer")
        default:
            throw invalid("must be an integer")
        }
    }

    /// A finite number; integers are accepted where floats are expected.
    func number() throws -> Double {
        let d: Double
        switch node.value {
        case .integer(let i): d = Double(i)
        case .float(let f): d = f
        default: throw invalid("must be a number")
        }
        guard d.isFinite else { throw invalid("must be a finite number") }
        return d
    }

    func positive() throws -> Double {
        let d = try number()
        guard d > 0 else { throw invalid("must be positive") }
        return d
    }

    func nonNegative() throws -> Double {
        let d = try number()
        guard d >= 0 else { throw invalid("must not be negative") }
        return d
    }

    func nonNegativeInteger() throws -> Int {
        let i = try integer()
        guard i >= 0 else { throw invalid("must not be negative") }
        return i
    }

    func array() throws -> [TOMLNode] {
        guard case .array(let items) = node.value else { throw invalid("must be an array") }
        return items
    }

    /// An element of an array value, named `key[index]`.
    func element(_ index: Int, _ item: TOMLNode) -> DeckField {
        var child = item
        if child.origin == nil { child.origin = node.origin }
        return DeckField(node: child, key: "\(key)[\(index)]", context: context)
    }

    // MARK: Paths

    private var baseDirectory: String { node.origin?.baseDirectory ?? context.baseDirectory }

    func resolvedPath() throws -> String {
        let s = try string()
        guard !s.isEmpty else { throw invalid("must not be an empty path") }
        return resolvePath(s, relativeTo: baseDirectory)
    }

    /// A path that must name an existing regular file.
    func existingFile() throws -> String {
        let path = try resolvedPath()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw error("key \(displayName): file not found: \(path)")
        }
        guard !isDirectory.boolValue else {
            throw error("key \(displayName): \(path) is a directory, not a file")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw error("key \(displayName): file is not readable: \(path)")
        }
        return path
    }

    /// A path the run will write: not a directory, and its parent is a
    /// directory or does not exist yet (it is created at run time).
    func outputPath() throws -> String {
        let path = try resolvedPath()
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw error("key \(displayName): output path \(path) is a directory")
        }
        // Walk up to the first existing ancestor; it must be a directory.
        var parent = (path as NSString).deletingLastPathComponent
        while !parent.isEmpty && parent != "/" {
            if fm.fileExists(atPath: parent, isDirectory: &isDirectory) {
                if !isDirectory.boolValue {
                    throw error("key \(displayName): cannot create \(path): \(parent) is a file, not a directory")
                }
                break
            }
            parent = (parent as NSString).deletingLastPathComponent
        }
        return path
    }
}

func resolvePath(_ path: String, relativeTo base: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    let absolute = expanded.hasPrefix("/") ? expanded : (base as NSString).appendingPathComponent(expanded)
    return (absolute as NSString).standardizingPath
}

/// The candidate closest to `word` (case-insensitive edit distance), if close enough to be a plausible typo.
func nearest(_ word: String, in candidates: [String]) -> String? {
    let w = Array(word.lowercased())
    var best: (String, Int)?
    for candidate in candidates {
        let d = editDistance(w, Array(candidate.lowercased()))
        if let current = best, current.1 <= d { continue }
        best = (candidate, d)
    }
    guard let (candidate, distance) = best else { return nil }
    let limit = max(2, w.count / 3)
    return distance <= limit ? candidate : nil
}

private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var row = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        row[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
        }
        swap(&previous, &row)
    }
    return previous[b.count]
}
