import Foundation
import XCTest
import Geometry
import Trajectory

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

    /// The plain-text output names the unit of each value (only the force's had one), and its
    /// energy is the JSON's to the Float network's precision.
    func testTheTextOutputNamesItsUnits() throws {
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors").path
        let dipoleModel = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/dipole/ethanol-dipole.safetensors").path
        let structure = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        let text = try CLI.run(["evaluate", "--model", model, "--structure", structure])
        XCTAssertEqual(text.status, 0, text.stderr)
        let energyLine = try XCTUnwrap(text.stdout.split(separator: "\n").first { $0.hasPrefix("  energy (eV): ") }, text.stdout)
        let energy = try XCTUnwrap(Double(energyLine.dropFirst("  energy (eV): ".count)))
        XCTAssertEqual(energy, try frame(["evaluate", "--model", model, "--structure", structure, "--json", "--float"]).energy)
        XCTAssertTrue(text.stdout.contains("  max |force|: ") && text.stdout.contains(" eV/Å\n"), text.stdout)
        let dipole = try CLI.run(["evaluate", "--model", dipoleModel, "--structure", structure])
        XCTAssertEqual(dipole.status, 0, dipole.stderr)
        XCTAssertTrue(dipole.stdout.contains("  dipole (e·Å): ["), dipole.stdout)
    }

    /// `--structure -` read standard input to its end before parsing: `yes |` hung and
    /// `/dev/zero` filled memory. A first line that is no atom count now ends it at once.
    func testStandardInputThatIsNotExtendedXYZIsRefusedWithoutReadingItAll() throws {
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors").path
        let structure = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path
        func evaluate(from source: String) throws -> CLI.Result {
            try CLI.run(["-c", "\(source) | \"$0\" evaluate --model \"$1\" --structure - --json", CLI.executable.path, model],
                        timeout: 30, program: URL(fileURLWithPath: "/bin/sh"))
        }
        let piped = try evaluate(from: "cat \"\(structure)\"")
        XCTAssertEqual(piped.status, 0, piped.stderr)
        XCTAssertEqual(try frame(["evaluate", "--model", model, "--structure", structure, "--json"]).energy,
                       try JSONDecoder().decode(Frame.self, from: Data(piped.stdout.utf8)).energy)
        let endless = try evaluate(from: "yes")
        XCTAssertNotEqual(endless.status, 0)
        XCTAssertTrue(endless.stderr.contains("standard input:1: expected the number of atoms of an extended-XYZ frame, found 'y'"), endless.stderr)
        let zeros = try evaluate(from: "cat /dev/zero")
        XCTAssertNotEqual(zeros.status, 0)
        XCTAssertTrue(zeros.stderr.contains("standard input:1: no line end in the first 64 KB"), zeros.stderr)
    }
}

/// `evaluate --json`'s stress is the strain derivative of its energy over the volume,
/// σ_ab = (1/V) ∂E/∂ε_ab (ASE's sign: positive under tension), checked through the binary on
/// strained copies of ethanol in a small triclinic cell (its atoms see their images). Only its
/// presence was checked before. The shipped model is the smooth variant: with the reference
/// options the 32-neighbour cap makes a crystal's energy jump under strain (copper in
/// `eninet-small`: a central difference 4 times the stress).
final class EvaluateStressTests: XCTestCase {
    private struct Frame: Decodable { let energy: Double; let stress: [[Double]]? }

    func testStressIsTheStrainDerivativeOfTheEnergy() throws {
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors").path
        var base = try StructureFile.readFirst(path: CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path)
        let cell = try Cell(matrix: Mat3(Vec3(7, 0, 0), Vec3(1.1, 6.5, 0), Vec3(0.4, -0.7, 7.5)))
        base.cell = cell
        let h = 1e-4
        let components = [(0, 0), (1, 2), (2, 0)]
        var frames = [base]
        for (a, b) in components {
            for sign in [1.0, -1.0] {
                // r -> r (I + ε), ε symmetric, for positions and cell rows alike.
                var strain = Mat3.identity
                if a == b { strain[a, a] += sign * h } else { strain[a, b] += sign * h / 2; strain[b, a] += sign * h / 2 }
                var strained = base
                strained.positions = base.positions.map { strain.leftMultiply($0) }
                let m = cell.matrix
                strained.cell = try Cell(matrix: Mat3(strain.leftMultiply(m[0]), strain.leftMultiply(m[1]), strain.leftMultiply(m[2])))
                frames.append(strained)
            }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stress-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("strained.extxyz").path
        try StructureFile.write(frames, to: file)
        let result = try CLI.run(["evaluate", "--model", model, "--structure", file, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let out = try result.stdout.split(separator: "\n").map { try JSONDecoder().decode(Frame.self, from: Data($0.utf8)) }
        XCTAssertEqual(out.count, 7)
        let stress = try XCTUnwrap(out[0].stress)
        for (k, (a, b)) in components.enumerated() {
            let derivative = (out[1 + 2 * k].energy - out[2 + 2 * k].energy) / (2 * h) / cell.volume
            XCTAssertGreaterThan(abs(derivative), 1e-4, "σ_\(a)\(b) must not vanish for this check")
            XCTAssertEqual(stress[a][b], derivative, accuracy: 1e-5 * abs(derivative), "σ_\(a)\(b)")
            XCTAssertEqual(stress[b][a], stress[a][b], accuracy: 1e-12)
        }
    }
}
