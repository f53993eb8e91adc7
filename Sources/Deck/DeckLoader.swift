import Foundation

/// A value set from outside the deck, typically a CLI option such as
/// `--steps 100` or `--set dynamics.seed=7`. Applied to the deck before
/// validation, so it is checked like any deck value and errors name it.
public struct DeckOverride: Equatable, Sendable {
    /// Canonical dotted key, e.g. `dynamics.steps`, `system.structure`.
    public var key: String
    /// A TOML value (`100`, `2.5`, `"langevin"`, `[2, 2, 2]`); text that is
    /// not valid TOML is taken as a string, so `structure=argon.xyz` works.
    public var value: String
    /// What to cite in errors, e.g. `--steps` (default `command line`).
    public var source: String

    public init(key: String, value: String, source: String = "command line") {
        self.key = key
        self.value = value
        self.source = source
    }

    /// Parses `key=value` as given to `--set`.
    public init(assignment: String, source: String = "command line") throws {
        guard let eq = assignment.firstIndex(of: "=") else {
            throw DeckError(file: source, line: nil, message: "override '\(assignment)' must have the form key=value (e.g. dynamics.steps=1000)")
        }
        let key = assignment[..<eq].trimmingCharacters(in: .whitespaces)
        let value = assignment[assignment.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        guard !key.isEmpty, !value.isEmpty else {
            throw DeckError(file: source, line: nil, message: "override '\(assignment)' must have the form key=value (e.g. dynamics.steps=1000)")
        }
        self.init(key: key, value: value, source: source)
    }
}

/// Reads a deck file (TOML, or AMBER mdin) into validated ``DeckSettings``.
///
/// ```swift
/// let settings = try DeckLoader.load(path: "argon.toml",
///                                    overrides: [DeckOverride(key: "dynamics.steps", value: "10", source: "--steps")])
/// ```
/// Relative paths in the deck are resolved against the deck's directory;
/// relative paths in overrides against the current directory.
public enum DeckLoader {
    /// Loads and validates a deck. The format is chosen by extension
    /// (`.toml`; `.in`, `.mdin`) or, failing that, by content (`&cntrl`).
    /// - Throws: ``DeckError`` (one line: `path:line: message`).
    public static func load(path: String, overrides: [DeckOverride] = []) throws -> DeckSettings {
        let absolute = resolvePath(path, relativeTo: FileManager.default.currentDirectoryPath)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw DeckError(file: path, line: nil, message: "cannot read deck: file not found")
        }
        guard !isDirectory.boolValue else {
            throw DeckError(file: path, line: nil, message: "cannot read deck: it is a directory")
        }
        guard let data = FileManager.default.contents(atPath: absolute) else {
            throw DeckError(file: path, line: nil, message: "cannot read deck: permission denied or unreadable")
        }
        let text = try utf8Text(data, file: path)
        return try parse(text: text, file: path, baseDirectory: (absolute as NSString).deletingLastPathComponent,
                         deckPath: absolute, format: detectFormat(path: path, text: text), overrides: overrides)
    }

    /// `data` as text, or an error naming the line of the first byte that is not UTF-8 (a deck
    /// saved as Latin-1 by an editor is otherwise refused as a whole, with no hint where).
    public static func utf8Text(_ data: Data, file: String) throws -> String {
        if let text = String(data: data, encoding: .utf8) { return text }
        var bytes = data.makeIterator()
        var decoder = UTF8()
        var line = 1
        while true {
            switch decoder.decode(&bytes) {
            case .scalarValue(let scalar): if scalar == "\n" { line += 1 }
            case .emptyInput, .error:
                throw DeckError(file: file, line: line, message: "not UTF-8 text: save the file as UTF-8 (this line has a byte that is not)")
            }
        }
    }

    /// Validates deck text that is already in memory.
    /// - Parameters:
    ///   - file: name used in error messages.
    ///   - baseDirectory: directory that relative paths are resolved against.
    public static func parse(text: String, file: String, baseDirectory: String, deckPath: String = "",
                             format: DeckFormat, overrides: [DeckOverride] = []) throws -> DeckSettings {
        let root: TOMLTable
        var context = DeckContext(file: file, baseDirectory: baseDirectory, synthesized: false)
        var warnings: [String] = []
        switch format {
        case .toml:
            root = try TOMLParser.parse(text, file: file)
        case .mdin:
            let reader = MdinReader(file: file, baseDirectory: baseDirectory)
            root = try reader.read(text)
            warnings = reader.warnings
            context.synthesized = true
            context.missingHints = MdinReader.missingHints
        }
        try apply(overrides, to: root)
        var validator = DeckValidator(context: context)
        var settings = try validator.validate(root, format: format, deckPath: deckPath)
        settings.warnings = warnings + settings.warnings
        return settings
    }

    /// `.toml` → TOML; `.in`, `.mdin` → mdin; otherwise mdin if a line starts with `&cntrl`.
    public static func detectFormat(path: String, text: String) -> DeckFormat {
        switch (path as NSString).pathExtension.lowercased() {
        case "toml": return .toml
        case "in", "mdin": return .mdin
        default: break
        }
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let trimmed = line.trimmingCharacters(in: .whitespaces).lowercased()
            if trimmed.hasPrefix("&cntrl") { return .mdin }
        }
        return .toml
    }

    static func apply(_ overrides: [DeckOverride], to root: TOMLTable) throws {
        let cwd = FileManager.default.currentDirectoryPath
        for override in overrides {
            let parts = override.key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !parts.contains(where: { $0.isEmpty || !$0.utf8.allSatisfy(isBareKeyByte) }) else {
                throw DeckError(file: override.source, line: nil, message: "invalid override key '\(override.key)' (expected e.g. dynamics.steps)")
            }
            let origin = ValueOrigin(file: override.source, line: nil, key: override.key, text: override.value, baseDirectory: cwd)
            var node: TOMLNode
            if let parsed = try? TOMLParser.parseValue(override.value, file: override.source) {
                node = parsed
            } else {
                node = TOMLNode(value: .string(override.value), line: 0)
            }
            node.origin = origin
            var table = root
            for (k, part) in parts.dropLast().enumerated() {
                if let existing = table[part] {
                    guard case .table(let t) = existing.value else {
                        throw DeckError(file: override.source, line: nil,
                                        message: "cannot set '\(override.key)': '\(parts[0...k].joined(separator: "."))' is not a table")
                    }
                    table = t
                } else {
                    let t = TOMLTable(line: 0, path: Array(parts[0...k]), kind: .header)
                    table.set(part, TOMLNode(value: .table(t), line: 0, origin: origin))
                    table = t
                }
            }
            if let last = parts.last { table.set(last, node) }
        }
    }
}
