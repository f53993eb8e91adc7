import Foundation
import XCTest

/// `bench eninet --model M --structure S`: the user's model on the user's structure.
final class BenchCommandTests: XCTestCase {
    private var model: String { CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors").path }
    private var ethanol: String { CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path }

    func testTimesAGivenModelOnAGivenStructureLabelledByFileNames() throws {
        let result = try CLI.run(["bench", "eninet", "--model", model, "--structure", ethanol, "--repetitions", "2", "--threads", "1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("RESULT ") }
        XCTAssertEqual(lines.count, 1, result.stdout)
        let fields = try XCTUnwrap(lines.first).split(separator: " ")
        XCTAssertEqual(fields.count, 4)
        XCTAssertEqual(fields[1], "eninet_ef_ms_ethanol_energy_ethanol")
        XCTAssertGreaterThan(try XCTUnwrap(Double(fields[2])), 0)
        XCTAssertEqual(fields[3], "ms")
        // The reference configurations' GEMM figure belongs to their md17 run only.
        XCTAssertFalse(result.stdout.contains("gemm_fraction"))
        // Ethanol has 9 atoms, all within the 5 Å cutoff of each other: 72 directed edges.
        XCTAssertTrue(result.stdout.contains("9 atoms    72 edges"), result.stdout)
    }

    func testABadThreadCountIsAnErrorNamingIt() throws {
        let result = try CLI.run(["bench", "eninet", "--model", model, "--structure", ethanol, "--threads", "1,two"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("'two'"), result.stderr)
        XCTAssertFalse(result.stdout.contains("RESULT"))
    }

    func testAMissingStructureIsAnErrorNamingIt() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString).xyz").path
        let result = try CLI.run(["bench", "eninet", "--model", model, "--structure", missing])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertFalse(result.terminatedBySignal)
        XCTAssertTrue(result.stderr.contains(missing), result.stderr)
        XCTAssertFalse(result.stdout.contains("RESULT"))
    }
}
