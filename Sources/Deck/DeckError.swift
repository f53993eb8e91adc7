import Foundation

/// A mistake in an input deck, located by file and line.
///
/// The description is always a single line in the compiler-style form
/// `path:line: message` (or `path: message` when no single line is to blame,
/// for example a required table that is absent), so that a CLI can print it
/// verbatim and an editor can jump to it.
public struct DeckError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file as the user named it (deck path, or `command line` for overrides).
    public var file: String
    /// One-based line number, or `nil` when the problem concerns the whole file.
    public var line: Int?
    /// What is wrong, naming the key.
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        let oneLine = message.replacingOccurrences(of: "\n", with: " ")
        if let line { return "\(file):\(line): \(oneLine)" }
        return "\(file): \(oneLine)"
    }
}

/// Where a value came from when it did not come straight from a TOML file:
/// an AMBER namelist entry (possibly converted, e.g. `dt` in ps to fs) or a
/// command-line override. Errors about the value cite this origin.
public struct ValueOrigin: Equatable, Sendable {
    /// File to cite in messages (`deck.in`, `command line`).
    public var file: String
    /// Line to cite, if any.
    public var line: Int?
    /// The key as the user wrote it (`dt`, `--set dynamics.steps`).
    public var key: String
    /// The value as the user wrote it, before unit conversion.
    public var text: String
    /// Directory that relative paths in this value are resolved against.
    public var baseDirectory: String

    public init(file: String, line: Int?, key: String, text: String, baseDirectory: String) {
        self.file = file
        self.line = line
        self.key = key
        self.text = text
        self.baseDirectory = baseDirectory
    }
}
