import Foundation
import XCTest

/// Paths the tests need: fixtures in this target, `../shared` next to the repository, and a
/// fresh temporary directory per test case.
enum TestPaths {
    static var fixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    /// `../shared` relative to the folder holding Package.swift, or nil when absent.
    static var shared: URL? {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                let shared = dir.deletingLastPathComponent().appendingPathComponent("shared")
                return FileManager.default.fileExists(atPath: shared.path) ? shared : nil
            }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    static func sharedFile(_ relative: String) throws -> String {
        guard let shared, FileManager.default.fileExists(atPath: shared.appendingPathComponent(relative).path) else {
            throw XCTSkip("../shared/\(relative) is not available")
        }
        return shared.appendingPathComponent(relative).path
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("eninetmd-trajectory-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// Asserts that `body` throws an error whose description contains every fragment.
func assertThrowsMessage(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                         _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch {
        let text = String(describing: error)
        for fragment in fragments where !text.contains(fragment) {
            XCTFail("error \"\(text)\" does not contain \"\(fragment)\"", file: file, line: line)
        }
    }
}
