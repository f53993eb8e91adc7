import Foundation

/// The bytes of a text file followed by a NUL, so that `strtod` can parse numbers in place
/// without copying each token into a `String` (the dominant cost of reading large XYZ files).
struct TextBytes {
    let path: String
    private(set) var bytes: [UInt8]

    init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrajectoryError("\(path): no such file")
        }
        guard !isDirectory.boolValue else { throw TrajectoryError("\(path): is a directory, not a file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrajectoryError("\(path): cannot be read (permissions?)")
        }
        bytes = Self.withoutByteOrderMark([UInt8](data))
        bytes.append(0)
    }

    init(path: String, text: String) {
        self.path = path
        bytes = Self.withoutByteOrderMark(Array(text.utf8))
        bytes.append(0)
    }

    /// A UTF-8 byte-order mark (as Windows editors write) is no part of the first line: the
    /// count line read as "\u{FEFF}9" and the file was refused, with the mark invisible.
    private static func withoutByteOrderMark(_ bytes: [UInt8]) -> [UInt8] {
        bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(bytes.dropFirst(3)) : bytes
    }

    /// Runs `body` with a scanner over the text.
    func withScanner<R>(_ body: (inout TextScanner) throws -> R) throws -> R {
        try bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { throw TrajectoryError("\(path): cannot be read") }
            var scanner = TextScanner(base: base, count: buffer.count - 1)
            return try body(&scanner)
        }
    }
}

/// A line and token cursor over NUL-terminated bytes. Token ranges are byte offsets.
struct TextScanner {
    let base: UnsafePointer<UInt8>
    let count: Int
    private(set) var offset = 0
    /// 1-based number of the line most recently returned by `nextLine`.
    private(set) var lineNumber = 0
    /// Tokens of the last `tokenize` call, reused to avoid an allocation per line.
    var tokens: [Range<Int>] = []

    init(base: UnsafePointer<UInt8>, count: Int) {
        self.base = base
        self.count = count
        tokens.reserveCapacity(16)
    }

    var atEnd: Bool { offset >= count }
    var bytesLeft: Int { max(count - offset, 0) }

    /// The next line without its terminator (`\n` or `\r\n`), or nil at the end of the text.
    mutating func nextLine() -> Range<Int>? {
        guard offset < count else { return nil }
        let start = offset
        var end = start
        while end < count && base[end] != 10 { end += 1 }
        offset = end + 1
        lineNumber += 1
        if end > start && base[end - 1] == 13 { end -= 1 }
        return start..<end
    }

    /// True if the rest of the text holds only whitespace.
    func restIsBlank() -> Bool {
        var i = offset
        while i < count {
            if !TextScanner.isSpace(base[i]) && base[i] != 10 && base[i] != 13 { return false }
            i += 1
        }
        return true
    }

    @inline(__always) static func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 11 || c == 12 || c == 13 }

    /// Splits `line` at runs of blanks into `tokens`.
    mutating func tokenize(_ line: Range<Int>) {
        tokens.removeAll(keepingCapacity: true)
        var i = line.lowerBound
        let end = line.upperBound
        while i < end {
            while i < end && TextScanner.isSpace(base[i]) { i += 1 }
            guard i < end else { break }
            let start = i
            while i < end && !TextScanner.isSpace(base[i]) { i += 1 }
            tokens.append(start..<i)
        }
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(start: base + range.lowerBound, count: range.count), as: UTF8.self)
    }

    /// The whole token parsed as a Double, or nil if it is not entirely a number.
    func double(_ range: Range<Int>) -> Double? {
        guard !range.isEmpty else { return nil }
        var endPointer: UnsafeMutablePointer<CChar>? = nil
        let start = UnsafeRawPointer(base + range.lowerBound).assumingMemoryBound(to: CChar.self)
        let value = strtod(start, &endPointer)
        guard let endPointer, endPointer - UnsafeMutablePointer(mutating: start) == range.count else {
            return nil
        }
        return value
    }

    /// The whole token parsed as a decimal integer, or nil.
    func integer(_ range: Range<Int>) -> Int? {
        var i = range.lowerBound
        guard i < range.upperBound else { return nil }
        var negative = false
        if base[i] == 45 || base[i] == 43 { negative = base[i] == 45; i += 1 }
        guard i < range.upperBound else { return nil }
        var value = 0
        while i < range.upperBound {
            let d = Int(base[i]) - 48
            guard d >= 0 && d <= 9 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(d)
            guard !o1 && !o2 else { return nil }
            value = s
            i += 1
        }
        return negative ? -value : value
    }

    /// The line with surrounding blanks removed.
    func trimmed(_ line: Range<Int>) -> Range<Int> {
        var lo = line.lowerBound, hi = line.upperBound
        while lo < hi && TextScanner.isSpace(base[lo]) { lo += 1 }
        while hi > lo && TextScanner.isSpace(base[hi - 1]) { hi -= 1 }
        return lo..<hi
    }
}

/// Formats a Double so that parsing the text gives the same Double (shortest round-trip form).
@inline(__always) func exactText(_ x: Double) -> String { x.description }
