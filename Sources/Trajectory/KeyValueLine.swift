/// One `key=value` entry of an extended XYZ comment line, as written (quotes removed).
struct KeyValueEntry {
    var key: String
    var value: String
    /// The value was given in `{...}` or `[...]`, where commas also separate items.
    var bracketed: Bool
}

/// A parsed comment-line value, typed the way ASE types it.
enum KeyValueValue: Equatable {
    case numbers([Double])
    case booleans([Bool])
    case text(String)

    init(_ entry: KeyValueEntry) {
        let separators: (Character) -> Bool = entry.bracketed
            ? { $0 == "," || $0.isWhitespace } : { $0.isWhitespace }
        let items = entry.value.split(whereSeparator: separators)
        guard !items.isEmpty else {
            self = .text(entry.value)
            return
        }
        var numbers: [Double] = []
        numbers.reserveCapacity(items.count)
        for item in items {
            guard let x = Double(item) else { break }
            numbers.append(x)
        }
        if numbers.count == items.count {
            self = .numbers(numbers)
            return
        }
        let flags = items.compactMap(KeyValueValue.boolean)
        if flags.count == items.count {
            self = .booleans(flags)
            return
        }
        self = .text(entry.value)
    }

    static func boolean<S: StringProtocol>(_ s: S) -> Bool? {
        switch s {
        case "T", "True", "true", "TRUE": return true
        case "F", "False", "false", "FALSE": return false
        default: return nil
        }
    }
}

/// Why a comment line could not be split into entries.
struct KeyValueSyntaxError: Error {
    let message: String
}

/// Splits an ASE extended XYZ comment line into `key=value` entries.
///
/// Values may be bare words, `"double-quoted"` (with `\"` and `\\` escapes), `'single-quoted'`,
/// or in `{...}` / `[...]`. A key with no `=` stands for `key=T`, as in ASE.
enum KeyValueLine {
    static func parse(_ scanner: TextScanner, _ line: Range<Int>) throws -> [KeyValueEntry] {
        let base = scanner.base
        var i = line.lowerBound
        let end = line.upperBound
        var entries: [KeyValueEntry] = []

        func skipBlanks() { while i < end && TextScanner.isSpace(base[i]) { i += 1 } }

        /// Reads a bare or quoted word; a bare word stops at a blank or, for keys, at `=`.
        func readWord(stopAtEquals: Bool) throws -> (text: String, bracketed: Bool) {
            guard i < end else { return ("", false) }
            let first = base[i]
            if first == UInt8(ascii: "\"") || first == UInt8(ascii: "'") {
                i += 1
                var bytes: [UInt8] = []
                while i < end && base[i] != first {
                    if base[i] == UInt8(ascii: "\\") && i + 1 < end
                        && (base[i + 1] == first || base[i + 1] == UInt8(ascii: "\\")) {
                        i += 1
                    }
                    bytes.append(base[i])
                    i += 1
                }
                guard i < end else {
                    throw KeyValueSyntaxError(message: "unterminated quoted value starting \(String(decoding: [first], as: UTF8.self))\(String(decoding: bytes.prefix(30), as: UTF8.self))")
                }
                i += 1
                return (String(decoding: bytes, as: UTF8.self), false)
            }
            if !stopAtEquals && (first == UInt8(ascii: "{") || first == UInt8(ascii: "[")) {
                let close = first == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                let start = i + 1
                while i < end && base[i] != close { i += 1 }
                guard i < end else {
                    throw KeyValueSyntaxError(message: "unterminated '\(String(decoding: [first], as: UTF8.self))' value")
                }
                let text = scanner.string(start..<i)
                i += 1
                return (text, true)
            }
            let start = i
            while i < end && !TextScanner.isSpace(base[i]) && !(stopAtEquals && base[i] == UInt8(ascii: "=")) { i += 1 }
            return (scanner.string(start..<i), false)
        }

        while true {
            skipBlanks()
            guard i < end else { break }
            if base[i] == UInt8(ascii: "=") { throw KeyValueSyntaxError(message: "'=' without a key") }
            let key = try readWord(stopAtEquals: true).text
            skipBlanks()
            if i < end && base[i] == UInt8(ascii: "=") {
                i += 1
                skipBlanks()
                guard i < end else { throw KeyValueSyntaxError(message: "key '\(key)' has '=' but no value") }
                let value = try readWord(stopAtEquals: false)
                entries.append(KeyValueEntry(key: key, value: value.text, bracketed: value.bracketed))
            } else {
                entries.append(KeyValueEntry(key: key, value: "T", bracketed: false))
            }
        }
        return entries
    }

    /// Quotes a value or key for a comment line when it would not survive as a bare word.
    static func quoted(_ s: String) -> String {
        let needsQuotes = s.isEmpty || s.contains { $0.isWhitespace || $0 == "=" || $0 == "\"" || $0 == "'" || $0 == "\\" }
            || s.hasPrefix("{") || s.hasPrefix("[")
        guard needsQuotes else { return s }
        var out = "\""
        for ch in s {
            if ch == "\"" || ch == "\\" { out.append("\\") }
            out.append(ch)
        }
        out.append("\"")
        return out
    }
}
