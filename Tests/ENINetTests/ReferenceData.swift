import Foundation
import XCTest
@testable import ENINet
import Geometry

/// Locates the reference data: small files copied into this target's `Fixtures` folder (always
/// present), and `../shared/eninet-reference` beside the repository (skipped when absent).
enum ReferenceData {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

    static var fixtures: URL { testsDirectory.appendingPathComponent("Fixtures") }

    /// `../shared/eninet-reference` relative to the package root (the folder with Package.swift).
    static var shared: URL? {
        var dir = testsDirectory
        for _ in 0..<6 {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                let s = dir.deletingLastPathComponent().appendingPathComponent("shared/eninet-reference")
                return FileManager.default.fileExists(atPath: s.path) ? s : nil
            }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// A file from Fixtures if copied there, else from the shared folder, else skip the test.
    static func file(_ name: String) throws -> String {
        let f = fixtures.appendingPathComponent(name)
        if FileManager.default.fileExists(atPath: f.path) { return f.path }
        guard let s = shared?.appendingPathComponent(name), FileManager.default.fileExists(atPath: s.path) else {
            throw XCTSkip("reference file \(name) is not available (../shared/eninet-reference absent)")
        }
        return s.path
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try file(name)))
        let object = try JSONSerialization.jsonObject(with: data)
        return try XCTUnwrap(object as? [String: Any])
    }

    /// The molecule cases of a reference JSON file.
    static func cases(_ name: String) throws -> [[String: Any]] {
        // Load outside XCTUnwrap: a skip thrown inside its autoclosure would count as a failure.
        let document = try json(name)
        return try XCTUnwrap(document["molecules"] as? [[String: Any]])
    }

    static func positions(_ molecule: [String: Any]) throws -> [Vec3] {
        let rows = try XCTUnwrap(molecule["positions"] as? [[Double]])
        return rows.map { Vec3($0[0], $0[1], $0[2]) }
    }

    static func numbers(_ molecule: [String: Any]) throws -> [Int] {
        try XCTUnwrap(molecule["numbers"] as? [Int])
    }
}

/// Relative error measure used throughout: max |a − b| / max(max |b|, floor).
func maxRelativeError(_ a: [Double], _ b: [Double], floor: Double = 1e-12) -> Double {
    guard a.count == b.count else { return .infinity }
    var num = 0.0, den = floor
    for k in 0..<a.count { num = max(num, abs(a[k] - b[k])); den = max(den, abs(b[k])) }
    return num / den
}
