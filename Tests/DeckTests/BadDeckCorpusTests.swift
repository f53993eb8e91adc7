import XCTest
@testable import Deck

/// Every deck in `Fixtures/bad/` must fail to load with a single-line error
/// that contains the fragment recorded in `expected.tsv` (which starts with
/// `file:line:`, so the line number is checked too).
final class BadDeckCorpusTests: XCTestCase {
    private func manifest() throws -> [(file: String, fragment: String)] {
        let text = try String(contentsOfFile: Fixtures.path("bad/expected.tsv"), encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            return parts.count == 2 ? (parts[0], parts[1]) : nil
        }
    }

    func testManifestCoversEveryBadDeck() throws {
        let entries = try manifest()
        XCTAssertGreaterThanOrEqual(entries.count, 30)
        let files = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("bad"))
            .filter { $0 != "expected.tsv" }.sorted()
        XCTAssertEqual(files, entries.map(\.file).sorted())
    }

    func testEveryBadDeckFailsWithItsExpectedOneLineError() throws {
        for entry in try manifest() {
            let path = Fixtures.path("bad/" + entry.file)
            do {
                let settings = try DeckLoader.load(path: path)
                XCTFail("\(entry.file) loaded without error: \(settings.title)")
            } catch let error as DeckError {
                let text = error.description
                XCTAssertFalse(text.contains("\n"), "\(entry.file): multi-line error")
                XCTAssertTrue(text.hasPrefix(path + ":"), "\(entry.file): error does not start with the deck path: \(text)")
                XCTAssertTrue(text.contains(entry.fragment), "\(entry.file):\n  got      \(text)\n  expected \(entry.fragment)")
            }
        }
    }

    func testUnreadableDecksAreErrorsToo() {
        XCTAssertThrowsError(try DeckLoader.load(path: Fixtures.path("bad/no-such-deck.toml"))) { e in
            XCTAssertEqual("\(e)", Fixtures.path("bad/no-such-deck.toml") + ": cannot read deck: file not found")
        }
        XCTAssertThrowsError(try DeckLoader.load(path: Fixtures.path("bad"))) { e in
            XCTAssertTrue("\(e)".hasSuffix(": cannot read deck: it is a directory"), "\(e)")
        }
    }

    /// A deck saved as Latin-1 (an "Å" in a comment is the single byte 0xC5) names the line.
    func testADeckThatIsNotUTF8NamesTheLineOfItsFirstBadByte() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("latin1-deck-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("latin1.toml").path
        var bytes = Array("[system]\n# box of 20 \u{C5}\nstructure = \"a.xyz\" # \u{C5}\n".utf8)
        let encodedÅ = try XCTUnwrap(bytes.firstIndex(of: 0xC3))
        bytes.replaceSubrange(encodedÅ...encodedÅ + 1, with: [0xC5])
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try DeckLoader.load(path: path)) { e in
            XCTAssertTrue("\(e)".hasPrefix(path + ":2: not UTF-8 text"), "\(e)")
        }
        XCTAssertEqual(try DeckLoader.utf8Text(Data("a\nb\u{C5}".utf8), file: "f"), "a\nb\u{C5}")
    }
}
