import Foundation
import XCTest

/// Finds files in this target's `Fixtures/` folder, from the source tree, so
/// decks with relative paths resolve exactly as they will for users.
enum Fixtures {
    static var directory: String {
        (URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path as NSString).standardizingPath
    }

    static func path(_ relative: String) -> String {
        (directory as NSString).appendingPathComponent(relative)
    }
}
