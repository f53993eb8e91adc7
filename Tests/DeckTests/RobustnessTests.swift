import XCTest
@testable import Deck

/// Damaged decks (every truncation, random byte edits) must either load or
/// fail with a one-line DeckError whose line lies inside the text: never a
/// crash, a hang or an error without a location in the document.
final class RobustnessTests: XCTestCase {
    private let decks = ["argon-nve.toml", "argon-langevin.toml", "sum-bussi.toml", "eninet-minimize.toml",
                         "argon-langevin.in", "minimize.mdin"]

    private func check(_ text: String, format: DeckFormat, label: String) {
        let lineCount = text.split(separator: "\n", omittingEmptySubsequences: false).count
        do {
            _ = try DeckLoader.parse(text: text, file: "d", baseDirectory: Fixtures.path("good"), format: format)
        } catch let error as DeckError {
            XCTAssertFalse(error.description.contains("\n"), "\(label): \(error)")
            if let line = error.line {
                XCTAssertTrue((1...max(1, lineCount)).contains(line), "\(label): line \(line) outside 1...\(lineCount): \(error)")
            }
            XCTAssertEqual(error.file, "d", "\(label): \(error)")
        } catch {
            XCTFail("\(label): unexpected error type \(error)")
        }
    }

    func testEveryTruncationLoadsOrFailsWithALocatedError() throws {
        var failures = 0
        for name in decks {
            let text = try String(contentsOfFile: Fixtures.path("good/" + name), encoding: .utf8)
            let format = DeckLoader.detectFormat(path: name, text: text)
            let bytes = Array(text.utf8)
            for cut in 0..<bytes.count {
                let prefix = String(decoding: bytes[..<cut], as: UTF8.self)
                check(prefix, format: format, label: "\(name) cut at \(cut)")
                if (try? DeckLoader.parse(text: prefix, file: "d", baseDirectory: Fixtures.path("good"), format: format)) == nil { failures += 1 }
            }
        }
        // Most prefixes lack required keys; the whole decks themselves load.
        XCTAssertGreaterThan(failures, 1000)
    }

    func testRandomByteEditsLoadOrFailWithALocatedError() throws {
        var generator = SplitMix64(seed: 12345)
        let alphabet = Array("=[]{}\"'.,#\n\\ -+_0123456789abcdeEinfnatrue&/!".utf8)
        for name in decks {
            let text = try String(contentsOfFile: Fixtures.path("good/" + name), encoding: .utf8)
            let format = DeckLoader.detectFormat(path: name, text: text)
            let original = Array(text.utf8)
            for trial in 0..<300 {
                var bytes = original
                for _ in 0..<(1 + Int(generator.next() % 3)) {
                    let position = Int(generator.next() % UInt64(bytes.count))
                    let replacement = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                    if generator.next() % 2 == 0 { bytes[position] = replacement } else { bytes.insert(replacement, at: position) }
                }
                check(String(decoding: bytes, as: UTF8.self), format: format, label: "\(name) trial \(trial)")
            }
        }
    }
}

/// A small deterministic generator so the edits are the same on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
