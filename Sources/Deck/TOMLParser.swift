import Foundation

/// A strict parser for the subset of TOML 1.0 that input decks need.
///
/// Supported: comments; bare, quoted and dotted keys; basic and literal strings
/// (single- and multi-line, with all TOML escapes); decimal, hexadecimal, octal
/// and binary integers with `_` separators; floats with fraction and exponent,
/// `inf` and `nan`; booleans; arrays (multi-line, nested, mixed); inline tables;
/// `[tables]` and `[[arrays of tables]]`. Dates and times are rejected.
/// Duplicate keys and redefined tables are errors naming both lines.
///
/// ```swift
/// let root = try TOMLParser.parse(text, file: "deck.toml")
/// ```
public struct TOMLParser {
    private let bytes: [UInt8]
    private let file: String
    private var pos = 0
    private var line = 1
    private var root: TOMLTable
    private var current: TOMLTable
    /// Identifies the `[section]` being read, so dotted keys can only extend
    /// tables they created in that same section.
    private var section = 0
    private var nextSection = 1
    /// Arrays and inline tables open around the current value: each level is a recursion, and
    /// a file of ten thousand `[` would overflow the stack.
    private var nesting = 0
    private static let maximumNesting = 100

    /// Parses a whole document.
    /// - Parameters:
    ///   - text: the document.
    ///   - file: the name used in error messages.
    public static func parse(_ text: String, file: String) throws -> TOMLTable {
        var parser = TOMLParser(bytes: Array(text.utf8), file: file)
        return try parser.parseDocument()
    }

    /// Parses a single value such as `42`, `"argon"` or `[1, 1, 1]` (used for
    /// command-line overrides).
    public static func parseValue(_ text: String, file: String) throws -> TOMLNode {
        var parser = TOMLParser(bytes: Array(text.utf8), file: file)
        parser.skipSpaces()
        let node = try parser.parseValue()
        parser.skipSpaces()
        if parser.pos < parser.bytes.count {
            throw parser.error("unexpected text after value")
        }
        return node
    }

    private init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
        let root = TOMLTable(line: 1, path: [], kind: .header)
        self.root = root
        self.current = root
    }

    // MARK: - Document structure

    private mutating func parseDocument() throws -> TOMLTable {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
        while true {
            skipSpaces()
            guard let c = peek() else { break }
            if c == UInt8(ascii: "#") {
                try skipComment()
            } else if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                try consumeNewline()
                continue
            } else if c == UInt8(ascii: "[") {
                try parseHeader()
            } else {
                try parseKeyValue(into: current, section: section)
            }
            try expectEndOfLine()
        }
        return root
    }

    private mutating func parseHeader() throws {
        let headerLine = line
        pos += 1
        let isArray = peek() == UInt8(ascii: "[")
        if isArray { pos += 1 }
        skipSpaces()
        let parts = try parseKey()
        skipSpaces()
        guard peek() == UInt8(ascii: "]") else { throw error("expected ']' to close the table header") }
        pos += 1
        if isArray {
            guard peek() == UInt8(ascii: "]") else { throw error("expected ']]' to close the array-of-tables header") }
            pos += 1
        }
        let name = TOMLTable.dotted(parts)

        var table = root
        for (index, part) in parts.dropLast().enumerated() {
            let sofar = Array(parts[0...index])
            if let existing = table[part] {
                switch existing.value {
                case .table(let t):
                    if t.kind == .inline {
                        throw error("cannot extend inline table '\(TOMLTable.dotted(sofar))' (defined on line \(existing.line)) with header [\(name)]", line: headerLine)
                    }
                    table = t
                case .array(let items) where existing.isArrayOfTables:
                    guard let last = items.last, case .table(let t) = last.value else {
                        throw error("'\(TOMLTable.dotted(sofar))' is not a table", line: headerLine)
                    }
                    table = t
                default:
                    throw error("key '\(TOMLTable.dotted(sofar))' is already a value (line \(existing.line)), not a table", line: headerLine)
                }
            } else {
                let t = TOMLTable(line: headerLine, path: sofar, kind: .implicit)
                table.set(part, TOMLNode(value: .table(t), line: headerLine))
                table = t
            }
        }

        guard let last = parts.last else { throw error("empty table header") }
        if isArray {
            let element = TOMLTable(line: headerLine, path: parts, kind: .header)
            if let existing = table[last] {
                guard existing.isArrayOfTables, case .array(var items) = existing.value else {
                    throw error("cannot append [[\(name)]]: '\(name)' is already defined on line \(existing.line) as a \(existing.value.typeName)", line: headerLine)
                }
                items.append(TOMLNode(value: .table(element), line: headerLine))
                var node = existing
                node.value = .array(items)
                table.set(last, node)
            } else {
                var node = TOMLNode(value: .array([TOMLNode(value: .table(element), line: headerLine)]), line: headerLine)
                node.isArrayOfTables = true
                table.set(last, node)
            }
            current = element
        } else {
            if let existing = table[last] {
                guard case .table(let t) = existing.value else {
                    throw error("table [\(name)] conflicts with key '\(name)' defined on line \(existing.line)", line: headerLine)
                }
                switch t.kind {
                case .implicit:
                    t.kind = .header
                    t.line = headerLine
                case .header:
                    throw error("table [\(name)] is defined twice (first on line \(t.line))", line: headerLine)
                case .dotted, .inline:
                    throw error("table [\(name)] was already defined on line \(t.line) by a dotted key or inline table", line: headerLine)
                }
                current = t
            } else {
                let t = TOMLTable(line: headerLine, path: parts, kind: .header)
                table.set(last, TOMLNode(value: .table(t), line: headerLine))
                current = t
            }
        }
        section = nextSection
        nextSection += 1
    }

    /// Reads `key = value` and stores it, creating dotted-key tables on the way.
    private mutating func parseKeyValue(into table: TOMLTable, section: Int) throws {
        let keyLine = line
        let parts = try parseKey()
        skipSpaces()
        guard peek() == UInt8(ascii: "=") else {
            throw error("expected '=' after key '\(TOMLTable.dotted(parts))'", line: keyLine)
        }
        pos += 1
        skipSpaces()
        let node = try parseValue()

        var target = table
        for part in parts.dropLast() {
            let full = target.path + [part]
            if let existing = target[part] {
                guard case .table(let t) = existing.value, t.kind == .dotted(section: section) else {
                    throw error("cannot add key '\(TOMLTable.dotted(table.path + parts))': '\(TOMLTable.dotted(full))' was already defined on line \(existing.line)", line: keyLine)
                }
                target = t
            } else {
                let t = TOMLTable(line: keyLine, path: full, kind: .dotted(section: section))
                target.set(part, TOMLNode(value: .table(t), line: keyLine))
                target = t
            }
        }
        guard let last = parts.last else { throw error("empty key", line: keyLine) }
        if let existing = target[last] {
            throw error("duplicate key '\(TOMLTable.dotted(target.path + [last]))' (first defined on line \(existing.line))", line: keyLine)
        }
        target.set(last, node)
    }

    // MARK: - Keys

    private mutating func parseKey() throws -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            guard let c = peek() else { throw error("expected a key") }
            if c == UInt8(ascii: "\"") {
                pos += 1
                parts.append(try parseBasicString())
            } else if c == UInt8(ascii: "'") {
                pos += 1
                parts.append(try parseLiteralString())
            } else if isBareKeyByte(c) {
                let start = pos
                while let d = peek(), isBareKeyByte(d) { pos += 1 }
                parts.append(String(decoding: bytes[start..<pos], as: UTF8.self))
            } else {
                throw error("invalid character '\(printable(c))' where a key was expected")
            }
            skipSpaces()
            if peek() == UInt8(ascii: ".") {
                pos += 1
                continue
            }
            return parts
        }
    }

    // MARK: - Values

    private mutating func parseValue() throws -> TOMLNode {
        let valueLine = line
        guard let c = peek() else { throw error("expected a value") }
        switch c {
        case UInt8(ascii: "\""):
            if matches("\"\"\"") {
                pos += 3
                return TOMLNode(value: .string(try parseMultilineBasicString()), line: valueLine)
            }
            pos += 1
            return TOMLNode(value: .string(try parseBasicString()), line: valueLine)
        case UInt8(ascii: "'"):
            if matches("'''") {
                pos += 3
                return TOMLNode(value: .string(try parseMultilineLiteralString()), line: valueLine)
            }
            pos += 1
            return TOMLNode(value: .string(try parseLiteralString()), line: valueLine)
        case UInt8(ascii: "["):
            return try parseArray()
        case UInt8(ascii: "{"):
            return try parseInlineTable()
        case UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "#"):
            throw error("missing value after '='")
        default:
            return try parseScalarWord()
        }
    }

    private mutating func parseScalarWord() throws -> TOMLNode {
        let valueLine = line
        let start = pos
        while let c = peek(), isWordByte(c) { pos += 1 }
        let word = String(decoding: bytes[start..<pos], as: UTF8.self)
        if word.isEmpty {
            throw error("invalid character '\(printable(bytes[pos]))' where a value was expected")
        }
        // A date-time with a space separator would continue after the word.
        if looksLikeDate(word) {
            throw error("dates and times are not supported in decks (got \(word))")
        }
        if word == "true" { return TOMLNode(value: .boolean(true), line: valueLine) }
        if word == "false" { return TOMLNode(value: .boolean(false), line: valueLine) }
        if let value = TOMLParser.number(word) { return TOMLNode(value: value, line: valueLine) }
        if word.first.map({ $0.isLetter }) == true {
            throw error("invalid value '\(word)' (strings must be quoted: \"\(word)\")")
        }
        throw error("invalid number '\(word)'")
    }

    private func isWordByte(_ c: UInt8) -> Bool {
        isBareKeyByte(c) || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: ":")
    }

    private func looksLikeDate(_ word: String) -> Bool {
        let u = Array(word.utf8)
        func digit(_ i: Int) -> Bool { i < u.count && u[i] >= 0x30 && u[i] <= 0x39 }
        if u.count >= 5, digit(0), digit(1), digit(2), digit(3), u[4] == UInt8(ascii: "-") { return true }
        if u.count >= 3, digit(0), digit(1), u[2] == UInt8(ascii: ":") { return true }
        return false
    }

    /// Interprets an integer or float literal, or returns nil if it is not one.
    static func number(_ word: String) -> TOMLValue? {
        switch word {
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        var u = Array(word.utf8)
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where word.hasPrefix(prefix) {
            let digits = Array(u.dropFirst(2))
            guard validUnderscores(digits, isDigit: { isDigit($0, radix: radix) }),
                  let value = Int64(String(decoding: digits.filter { $0 != 0x5F }, as: UTF8.self), radix: radix)
            else { return nil }
            return .integer(value)
        }
        var sign: [UInt8] = []
        if let first = u.first, first == UInt8(ascii: "+") || first == UInt8(ascii: "-") {
            sign = [first]
            u.removeFirst()
        }
        // Split into integer part, fraction and exponent, checking each.
        var i = 0
        func take(_ allowUnderscore: Bool) -> [UInt8] {
            let s = i
            while i < u.count, isDigit(u[i], radix: 10) || (allowUnderscore && u[i] == 0x5F) { i += 1 }
            return Array(u[s..<i])
        }
        let intPart = take(true)
        guard !intPart.isEmpty, validUnderscores(intPart, isDigit: { isDigit($0, radix: 10) }) else { return nil }
        if intPart.count > 1 && intPart[0] == UInt8(ascii: "0") { return nil }
        var isFloat = false
        var text = sign + intPart.filter { $0 != 0x5F }
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            let frac = take(true)
            guard !frac.isEmpty, validUnderscores(frac, isDigit: { isDigit($0, radix: 10) }) else { return nil }
            text += [UInt8(ascii: ".")] + frac.filter { $0 != 0x5F }
            isFloat = true
        }
        if i < u.count, u[i] == UInt8(ascii: "e") || u[i] == UInt8(ascii: "E") {
            i += 1
            text.append(UInt8(ascii: "e"))
            if i < u.count, u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") {
                text.append(u[i])
                i += 1
            }
            let exp = take(true)
            guard !exp.isEmpty, validUnderscores(exp, isDigit: { isDigit($0, radix: 10) }) else { return nil }
            text += exp.filter { $0 != 0x5F }
            isFloat = true
        }
        guard i == u.count else { return nil }
        let s = String(decoding: text, as: UTF8.self)
        if isFloat {
            guard let d = Double(s) else { return nil }
            return .float(d)
        }
        guard let v = Int64(s) else { return nil }
        return .integer(v)
    }

    private static func isDigit(_ c: UInt8, radix: Int) -> Bool {
        switch radix {
        case 2: return c == 0x30 || c == 0x31
        case 8: return c >= 0x30 && c <= 0x37
        case 16: return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
        default: return c >= 0x30 && c <= 0x39
        }
    }

    /// Every `_` must sit between two digits.
    private static func validUnderscores(_ u: [UInt8], isDigit: (UInt8) -> Bool) -> Bool {
        guard let first = u.first, let last = u.last, isDigit(first), isDigit(last) else { return false }
        for k in u.indices where u[k] == 0x5F {
            if !isDigit(u[k - 1]) || !isDigit(u[k + 1]) { return false }
        }
        return u.allSatisfy { $0 == 0x5F || isDigit($0) }
    }

    private mutating func enterNesting() throws {
        nesting += 1
        guard nesting <= Self.maximumNesting else {
            throw error("arrays and inline tables nested more than \(Self.maximumNesting) deep")
        }
    }

    private mutating func parseArray() throws -> TOMLNode {
        let arrayLine = line
        pos += 1
        try enterNesting()
        defer { nesting -= 1 }
        var items: [TOMLNode] = []
        while true {
            try skipSpacesNewlinesAndComments()
            guard let c = peek() else { throw error("unterminated array (opened on line \(arrayLine))") }
            if c == UInt8(ascii: "]") {
                pos += 1
                break
            }
            items.append(try parseValue())
            try skipSpacesNewlinesAndComments()
            guard let d = peek() else { throw error("unterminated array (opened on line \(arrayLine))") }
            if d == UInt8(ascii: ",") {
                pos += 1
            } else if d == UInt8(ascii: "]") {
                pos += 1
                break
            } else {
                throw error("expected ',' or ']' in array, found '\(printable(d))'")
            }
        }
        return TOMLNode(value: .array(items), line: arrayLine)
    }

    private mutating func parseInlineTable() throws -> TOMLNode {
        let tableLine = line
        pos += 1
        try enterNesting()
        defer { nesting -= 1 }
        let inlineSection = nextSection
        nextSection += 1
        let table = TOMLTable(line: tableLine, path: [], kind: .inline)
        skipSpaces()
        if peek() == UInt8(ascii: "}") {
            pos += 1
            return TOMLNode(value: .table(table), line: tableLine)
        }
        while true {
            skipSpaces()
            if peek() == UInt8(ascii: "\n") || peek() == UInt8(ascii: "\r") {
                throw error("newline inside inline table (inline tables must be on one line)")
            }
            if peek() == UInt8(ascii: "}") {
                throw error("trailing comma in inline table")
            }
            try parseKeyValue(into: table, section: inlineSection)
            skipSpaces()
            guard let c = peek() else { throw error("unterminated inline table (opened on line \(tableLine))") }
            if c == UInt8(ascii: ",") {
                pos += 1
            } else if c == UInt8(ascii: "}") {
                pos += 1
                break
            } else if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                throw error("newline inside inline table (inline tables must be on one line)")
            } else {
                throw error("expected ',' or '}' in inline table, found '\(printable(c))'")
            }
        }
        freeze(table)
        return TOMLNode(value: .table(table), line: tableLine)
    }

    /// Marks an inline table and the tables its dotted keys created as closed.
    private func freeze(_ table: TOMLTable) {
        table.kind = .inline
        for key in table.keys {
            if let node = table[key], case .table(let t) = node.value { freeze(t) }
        }
    }

    // MARK: - Strings

    private mutating func parseBasicString() throws -> String {
        var out: [UInt8] = []
        while true {
            guard let c = peek() else { throw error("unterminated string") }
            if c == UInt8(ascii: "\"") {
                pos += 1
                return String(decoding: out, as: UTF8.self)
            }
            if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") { throw error("unterminated string (newline before closing quote)") }
            if c == UInt8(ascii: "\\") {
                pos += 1
                out += try parseEscape()
                continue
            }
            try checkStringByte(c)
            out.append(c)
            pos += 1
        }
    }

    private mutating func parseMultilineBasicString() throws -> String {
        let openLine = line
        var out: [UInt8] = []
        if peek() == UInt8(ascii: "\n") { try consumeNewline() } else if matches("\r\n") { try consumeNewline() }
        while true {
            guard let c = peek() else { throw error("unterminated multi-line string (opened on line \(openLine))") }
            if c == UInt8(ascii: "\"") && matches("\"\"\"") {
                var run = 0
                while pos + run < bytes.count && bytes[pos + run] == UInt8(ascii: "\"") { run += 1 }
                if run > 5 { throw error("too many quotes closing a multi-line string") }
                out += Array(repeating: UInt8(ascii: "\""), count: run - 3)
                pos += run
                return String(decoding: out, as: UTF8.self)
            }
            if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                try consumeNewline()
                out.append(UInt8(ascii: "\n"))
                continue
            }
            if c == UInt8(ascii: "\\") {
                pos += 1
                // A backslash ending a line swallows the newline and following blanks.
                var probe = pos
                while probe < bytes.count, bytes[probe] == 0x20 || bytes[probe] == 0x09 { probe += 1 }
                if probe < bytes.count, bytes[probe] == UInt8(ascii: "\n") || bytes[probe] == UInt8(ascii: "\r") {
                    pos = probe
                    while let d = peek(), d == 0x20 || d == 0x09 || d == UInt8(ascii: "\n") || d == UInt8(ascii: "\r") {
                        if d == 0x20 || d == 0x09 { pos += 1 } else { try consumeNewline() }
                    }
                    continue
                }
                out += try parseEscape()
                continue
            }
            try checkStringByte(c)
            out.append(c)
            pos += 1
        }
    }

    private mutating func parseLiteralString() throws -> String {
        let start = pos
        while true {
            guard let c = peek() else { throw error("unterminated string") }
            if c == UInt8(ascii: "'") {
                let s = String(decoding: bytes[start..<pos], as: UTF8.self)
                pos += 1
                return s
            }
            if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") { throw error("unterminated string (newline before closing quote)") }
            try checkStringByte(c)
            pos += 1
        }
    }

    private mutating func parseMultilineLiteralString() throws -> String {
        let openLine = line
        var out: [UInt8] = []
        if peek() == UInt8(ascii: "\n") { try consumeNewline() } else if matches("\r\n") { try consumeNewline() }
        while true {
            guard let c = peek() else { throw error("unterminated multi-line string (opened on line \(openLine))") }
            if c == UInt8(ascii: "'") && matches("'''") {
                var run = 0
                while pos + run < bytes.count && bytes[pos + run] == UInt8(ascii: "'") { run += 1 }
                if run > 5 { throw error("too many quotes closing a multi-line string") }
                out += Array(repeating: UInt8(ascii: "'"), count: run - 3)
                pos += run
                return String(decoding: out, as: UTF8.self)
            }
            if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                try consumeNewline()
                out.append(UInt8(ascii: "\n"))
                continue
            }
            try checkStringByte(c)
            out.append(c)
            pos += 1
        }
    }

    private func checkStringByte(_ c: UInt8) throws {
        if (c < 0x20 && c != 0x09) || c == 0x7F {
            throw error("control character U+\(String(format: "%04X", Int(c))) in string (use an escape)")
        }
    }

    private mutating func parseEscape() throws -> [UInt8] {
        guard let c = peek() else { throw error("unterminated escape sequence") }
        pos += 1
        switch c {
        case UInt8(ascii: "b"): return [0x08]
        case UInt8(ascii: "t"): return [0x09]
        case UInt8(ascii: "n"): return [0x0A]
        case UInt8(ascii: "f"): return [0x0C]
        case UInt8(ascii: "r"): return [0x0D]
        case UInt8(ascii: "\""): return [0x22]
        case UInt8(ascii: "\\"): return [0x5C]
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = c == UInt8(ascii: "u") ? 4 : 8
            guard pos + count <= bytes.count else { throw error("truncated unicode escape") }
            let hex = String(decoding: bytes[pos..<pos + count], as: UTF8.self)
            guard hex.utf8.allSatisfy({ TOMLParser.isDigit($0, radix: 16) }), let code = UInt32(hex, radix: 16),
                  let scalar = Unicode.Scalar(code) else {
                throw error("invalid unicode escape '\\\(Character(Unicode.Scalar(c)))\(hex)'")
            }
            pos += count
            return Array(String(Character(scalar)).utf8)
        default:
            throw error("invalid escape sequence '\\\(printable(c))'")
        }
    }

    // MARK: - Lexing helpers

    private func peek() -> UInt8? {
        pos < bytes.count ? bytes[pos] : nil
    }

    private func matches(_ s: String) -> Bool {
        let u = Array(s.utf8)
        return pos + u.count <= bytes.count && Array(bytes[pos..<pos + u.count]) == u
    }

    private mutating func skipSpaces() {
        while let c = peek(), c == 0x20 || c == 0x09 { pos += 1 }
    }

    private mutating func skipComment() throws {
        while let c = peek(), c != UInt8(ascii: "\n"), c != UInt8(ascii: "\r") {
            if (c < 0x20 && c != 0x09) || c == 0x7F { throw error("control character in comment") }
            pos += 1
        }
    }

    private mutating func consumeNewline() throws {
        if peek() == UInt8(ascii: "\r") {
            guard pos + 1 < bytes.count, bytes[pos + 1] == UInt8(ascii: "\n") else {
                throw error("carriage return not followed by a newline")
            }
            pos += 1
        }
        pos += 1
        line += 1
    }

    private mutating func skipSpacesNewlinesAndComments() throws {
        while let c = peek() {
            if c == 0x20 || c == 0x09 {
                pos += 1
            } else if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                try consumeNewline()
            } else if c == UInt8(ascii: "#") {
                try skipComment()
            } else {
                return
            }
        }
    }

    /// After a key/value pair or header only a comment may follow on the line.
    private mutating func expectEndOfLine() throws {
        skipSpaces()
        guard let c = peek() else { return }
        if c == UInt8(ascii: "#") { try skipComment() }
        guard let d = peek() else { return }
        if d == UInt8(ascii: "\n") || d == UInt8(ascii: "\r") {
            try consumeNewline()
            return
        }
        throw error("expected a newline after the value, found '\(printable(d))' (one key = value per line)")
    }

    private func printable(_ c: UInt8) -> String {
        if c >= 0x20 && c < 0x7F { return String(Character(Unicode.Scalar(c))) }
        return String(format: "\\x%02X", Int(c))
    }

    private func error(_ message: String, line: Int? = nil) -> DeckError {
        DeckError(file: file, line: line ?? self.line, message: message)
    }
}
