import Foundation
import XCTest

/// `bench eninet --model M --structure S`: the user's model on the user's structure; the
/// benchmarks' options.
final class BenchCommandTests: XCTestCase {
    private var model: String { CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors").path }
    private var ethanol: String { CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path }

    /// Thread counts outside 1...1024 are a usage error (exit 64) before any work: 300,000 once
    /// spent 8.7 s and 2.3 GB starting threads, and a negative count for an analysis ran on one.
    func testThreadCountsOutsideOneTo1024AreUsageErrors() throws {
        let commands: [[String]] = [
            ["evaluate", "--model", model, "--structure", ethanol],
            ["bench", "eninet", "--model", model, "--structure", ethanol, "--repetitions", "1"],
            ["bench", "train", "--repetitions", "1", "--batches", "1"],
            ["analyze", "msd", "absent.nc", "--csv", "msd.csv"],
            ["analyze", "vdos", ethanol, "--frame-dt-fs", "1", "--csv", "vdos.csv"],
        ]
        for command in commands {
            for count in ["0", "-3", "1025", "300000"] {
                let result = try CLI.run(command + ["--threads=\(count)"])
                XCTAssertFalse(result.terminatedBySignal, "\(command) \(count)")
                XCTAssertNotEqual(result.status, 0, "\(command) --threads \(count): \(result.stdout)")
                XCTAssertTrue(result.stderr.contains("from 1 to 1024"),
                              "\(command) --threads \(count): \(result.stderr)")
                XCTAssertFalse(result.stdout.contains("RESULT"), "\(command) --threads \(count)")
            }
        }
    }

    /// `bench lj --unwrapped-boxes`: atoms moved by whole box lengths (±50 boxes) run the same
    /// melt: equal energies at the start and after 40 steps, to the printed 7 decimals.
    func testUnwrappedBoxesRunTheSameMelt() throws {
        func energies(_ extra: [String]) throws -> [String] {
            let result = try CLI.run(["bench", "lj", "--cells", "4", "--steps", "40"] + extra)
            XCTAssertEqual(result.status, 0, result.stderr)
            return result.stdout.split(separator: "\n").filter { $0.contains("E_pair") }.map(String.init)
        }
        let wrapped = try energies([])
        XCTAssertEqual(wrapped.count, 1, "\(wrapped)")
        XCTAssertEqual(try energies(["--unwrapped-boxes", "50"]), wrapped)
        // The melt moved: E_pair after 40 steps differs from the start, so the agreement is not that of two untouched lattices.
        let pair = try XCTUnwrap(wrapped.first?.components(separatedBy: "E_pair/Nε ").last?.components(separatedBy: ",").first)
        let ends = pair.components(separatedBy: " -> ").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        XCTAssertEqual(ends.count, 2, pair)
        XCTAssertGreaterThan(abs(ends[0] - ends[1]), 1e-3, pair)
    }

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

    /// `--gemm-shapes`: GEMM's share of the evaluation, and shapes whose rows are the structure's
    /// atoms, edges or triplets (for ethanol, 9 atoms, 72 edges and 504 triplets: multiples of 9).
    func testGEMMShapesAreAShareOfTheEvaluationOverTheStructuresRows() throws {
        let result = try CLI.run(["bench", "eninet", "--model", model, "--structure", ethanol, "--repetitions", "1",
                                  "--threads", "1", "--gemm-shapes"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let summary = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.contains("GEMM, 1 thread:") }, result.stdout)
        // "  GEMM, 1 thread: <MFLOP> MFLOP in <calls> calls per evaluation, <gemm> of <total> ms (<share>%)"
        let numbers = summary.split(whereSeparator: { " ,()%".contains($0) }).compactMap { Double($0) }
        XCTAssertEqual(numbers.count, 6, String(summary))
        XCTAssertGreaterThan(numbers[1], 0)
        XCTAssertGreaterThan(numbers[2], 0)
        XCTAssertLessThanOrEqual(numbers[3], numbers[4])
        let rows = result.stdout.split(separator: "\n").filter { $0.contains(" calls ") && $0.contains("GFLOP/s") }
        XCTAssertFalse(rows.isEmpty, result.stdout)
        for row in rows {
            let m = try XCTUnwrap(Int(try XCTUnwrap(row.split(separator: " ").first)), String(row))
            XCTAssertEqual(m % 9, 0, String(row))
        }
    }

    /// Sizes that crashed, hung or filled the disk, and lists that timed nothing with exit 0:
    /// each is now refused before any work, naming the option.
    func testAbsurdSizesAndEmptyListsAreRefusedBeforeAnyWork() throws {
        let cases: [([String], String)] = [
            (["bench", "lj", "--cells", "1000"], "--cells must be at most 200"),
            (["bench", "lj", "--cells", "99999999999"], "--cells must be at most 200"),
            (["bench", "lj", "--trajectory-every=-1"], "--trajectory-every must be 0 (off) or a positive"),
            (["bench", "tensors", "--seconds", "inf"], "--seconds"),
            (["bench", "tensors", "--seconds", "nan"], "--seconds"),
            (["bench", "tensors", "--rows", "999999999"], "--rows"),
            (["bench", "tensors", "--rows", "abc"], "--rows"),
            (["bench", "analysis", "--frames", "100000000", "--atoms", "100000000"], "at most 5·10⁸"),
            (["bench", "eninet", "--threads", ""], "--threads lists nothing"),
            (["bench", "eninet", "--configs", "", "--repetitions", "1"], "--configs lists nothing"),
            (["bench", "eninet", "--configs", "SMALL", "--repetitions", "1"], "no 'SMALL' network"),
            (["bench", "train", "--batches", ""], "--batches lists nothing"),
            (["bench", "train", "--data", "/nonexistent/frames.extxyz", "--repetitions", "1", "--batches", "1"], "/nonexistent/frames.extxyz"),
        ]
        // The data file is read after the reference network, which needs ../shared.
        let hasShared = FileManager.default.fileExists(atPath: CLI.sharedDirectory.appendingPathComponent("eninet-reference").path)
        for (command, fragment) in cases where hasShared || !command.contains("--data") {
            let result = try CLI.run(command, timeout: 60)
            XCTAssertFalse(result.terminatedBySignal, "\(command)")
            XCTAssertNotEqual(result.status, 0, "\(command): \(result.stdout)")
            XCTAssertTrue(result.stderr.contains(fragment), "\(command): \(result.stderr)")
            XCTAssertFalse(result.stdout.contains("RESULT"), "\(command)")
        }
    }

    func testABatchSizeOutsideTheFramesIsAnErrorNamingIt() throws {
        let result = try CLI.run(["bench", "train", "--batches", "1,9"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertFalse(result.terminatedBySignal)
        XCTAssertTrue(result.stderr.contains("--batches: '9'"), result.stderr)
        XCTAssertFalse(result.stdout.contains("RESULT"))
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
