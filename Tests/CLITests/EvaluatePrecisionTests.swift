import Foundation
import XCTest

/// Issue 5: `evaluate --structure S --json` prints Double-network numbers unless `--float` is
/// given; the text output and `--data` keep the Float network by default.
final class EvaluatePrecisionTests: XCTestCase {
    private struct Frame: Decodable { let energy: Double; let forces: [[Double]] }

    private func frame(_ arguments: [String]) throws -> Frame {
        let result = try CLI.run(arguments)
        XCTAssertEqual(result.status, 0, result.stderr)
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").first)
        return try JSONDecoder().decode(Frame.self, from: Data(line.utf8))
    }

    func testJSONRunsTheDoubleNetworkUnlessFloatIsGiven() throws {
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors").path
        let structure = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        let base = ["evaluate", "--model", model, "--structure", structure, "--json"]
        let byDefault = try frame(base), double = try frame(base + ["--double"]), float = try frame(base + ["--float"])
        XCTAssertEqual(byDefault.energy, double.energy)
        XCTAssertEqual(byDefault.forces, double.forces)
        // The Float network differs in the last bits of Float, far above Double's.
        XCTAssertNotEqual(byDefault.energy, float.energy)
        XCTAssertEqual(byDefault.energy, float.energy, accuracy: 1e-4 * abs(double.energy))
    }
}
