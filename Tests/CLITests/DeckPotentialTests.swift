import Foundation
import XCTest
import Geometry

/// The energy each deck potential gives, through the real binary, against its formula written
/// out here: the finite-difference tests of `Potentials` check that forces match energies, not
/// that the energies are the documented ones, nor that a deck's `truncation` reaches the
/// potential it names.
final class DeckPotentialTests: XCTestCase {
    /// Atoms 0 and 1 at `r` along x, atom 2 far off (30 Å up), in vacuum.
    func energyAtStepZero(potential: String, r: Double) throws -> Double {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("deck-potential-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "3\n\nAr 0 0 0\nAr \(r) 0 0\nAr 0 0 30\n".write(to: dir.appendingPathComponent("three.xyz"), atomically: true, encoding: .utf8)
        let deck = """
        [system]
        structure = "three.xyz"
        [potential]
        \(potential)
        [dynamics]
        integrator = "verlet"
        timestep_fs = 1.0
        steps = 0
        [output]
        log = "log.csv"
        log_every = 1
        """
        try deck.write(to: dir.appendingPathComponent("deck.toml"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.appendingPathComponent("deck.toml").path, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try String(contentsOf: dir.appendingPathComponent("log.csv"), encoding: .utf8).split(separator: "\n")
        let header = rows.first?.split(separator: ",").map(String.init) ?? []
        let column = try XCTUnwrap(header.firstIndex(of: "potential_eV"))
        return try XCTUnwrap(rows.dropFirst().first.flatMap { Double($0.split(separator: ",", omittingEmptySubsequences: false)[column]) })
    }

    func testEachPotentialGivesItsFormulasEnergy() throws {
        let epsilon = 0.0104, sigma = 3.4, cutoff = 8.5
        func lj(_ r: Double) -> Double { 4 * epsilon * (pow(sigma / r, 12) - pow(sigma / r, 6)) }
        let ljKeys = "type = \"lj\"\nepsilon_eV = \(epsilon)\nsigma_A = \(sigma)\ncutoff_A = \(cutoff)"
        // Just inside the cutoff the shift is most of the energy: 1.7e-4 of its 1.8e-4 eV.
        let r = 8.4
        XCTAssertEqual(try energyAtStepZero(potential: ljKeys, r: r), lj(r) - lj(cutoff), accuracy: 1e-10, "lj, default shift")
        XCTAssertEqual(try energyAtStepZero(potential: ljKeys + "\ntruncation = \"shift\"", r: r), lj(r) - lj(cutoff), accuracy: 1e-10)
        XCTAssertEqual(try energyAtStepZero(potential: ljKeys + "\ntruncation = \"none\"", r: r), lj(r), accuracy: 1e-10, "lj, none")
        XCTAssertEqual(try energyAtStepZero(potential: ljKeys, r: 3.7), lj(3.7) - lj(cutoff), accuracy: 1e-10, "lj near its minimum")

        let depth = 0.35, alpha = 1.6, r0 = 2.4, morseCutoff = 6.0
        func morse(_ r: Double) -> Double { depth * (exp(-2 * alpha * (r - r0)) - 2 * exp(-alpha * (r - r0))) }
        let morseKeys = "type = \"morse\"\nD_eV = \(depth)\nalpha_per_A = \(alpha)\nr0_A = \(r0)\ncutoff_A = \(morseCutoff)"
        XCTAssertEqual(try energyAtStepZero(potential: morseKeys, r: 2.1), morse(2.1) - morse(morseCutoff), accuracy: 1e-10, "morse")
        XCTAssertEqual(try energyAtStepZero(potential: morseKeys + "\ntruncation = \"none\"", r: 2.1), morse(2.1), accuracy: 1e-10)

        // ½ k (r − r₀)² for the bond 0–1, ½ k |r₂ − x|² for the restraint on atom 2.
        XCTAssertEqual(try energyAtStepZero(potential: "type = \"harmonic\"\nbonds = [[0, 1, 2.5, 1.1]]", r: 1.7),
                       0.5 * 2.5 * 0.6 * 0.6, accuracy: 1e-10, "harmonic bond")
        XCTAssertEqual(try energyAtStepZero(potential: "type = \"harmonic\"\nrestraints = [[2, 0.8, 0.0, 0.5, 29.0]]", r: 1.7),
                       0.5 * 0.8 * (0.25 + 1.0), accuracy: 1e-10, "harmonic restraint")
    }
}
