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
}
