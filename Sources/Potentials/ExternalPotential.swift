import Foundation
import Geometry

/// Another program as a ``Potential``, the way ASE's file-I/O calculators and LAMMPS's
/// `fix external` plug in codes the engine does not contain (a quantum-chemistry program, a
/// model in another framework).
///
/// At every call the program runs once, through `/bin/sh -c command` in `workingDirectory`. It
/// reads the configuration as one extended-XYZ frame on its standard input (symbols and
/// positions in Å; `Lattice` and `pbc` for a cell) and prints, as the last line of its standard
/// output that starts with `{`, one JSON object: `energy` (eV), `forces` (`[N][3]`, eV/Å) and,
/// for a cell periodic along every axis, `stress` (`[3][3]`, or ASE's six Voigt components
/// xx yy zz yz xz xy; eV/Å³, ASE's sign: −virial/volume).
/// That is what `eninet-md evaluate --structure - --json` prints, so an ENINet model served by
/// another `eninet-md` is an external program too.
///
/// Anything else is an ``ExternalProgramError`` that names the command: a non-zero exit (with
/// the end of what the program wrote to standard error), no JSON line, a missing or non-finite
/// number, a force count that is not the atom count, no stress for a periodic cell (the logged
/// pressure would be wrong without it), or no answer within `timeout` seconds (the program and
/// what it started are then stopped). A stop request while the program runs stops it the same
/// way and throws ``EvaluationStopped``.
public final class ExternalPotential: Potential {
    public let name = "external"
    private let program: ExternalProgram
    public var command: String { program.command }
    /// How many times the program has answered (for tests).
    private(set) var calls = 0

    /// - Parameters:
    ///   - workingDirectory: where the command runs (nil: the current directory).
    ///   - timeout: seconds one evaluation may take.
    ///   - stopRequested: polled while the program runs (the CLI connects SIGINT and SIGTERM).
    public init(command: String, workingDirectory: String? = nil, timeout: Double = 3600,
                stopRequested: @escaping @Sendable () -> Bool = { false }) throws {
        guard !command.allSatisfy(\.isWhitespace) else { throw PotentialError("external: the command is empty") }
        guard timeout > 0, timeout.isFinite else { throw PotentialError("external: timeout \(timeout) s must be positive") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("eninetmd-external-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        } catch {
            throw PotentialError("external: cannot create the scratch directory \(scratch.path): \(error.localizedDescription)")
        }
        program = ExternalProgram(command: command, workingDirectory: workingDirectory ?? FileManager.default.currentDirectoryPath,
                                  timeout: timeout, scratch: scratch, stopRequested: stopRequested)
    }

    deinit { try? FileManager.default.removeItem(at: program.scratch) }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        let output = try program.run(input: try ExternalFrame.extendedXYZ(configuration))
        let result = try ExternalAnswer.decode(output, for: configuration, command: command)
        calls += 1
        return result
    }
}

/// The frame an external program reads. `Trajectory` has the full extended-XYZ writer, but
/// `Potentials` does not depend on it (design.md's module table); this is the subset a frame needs.
enum ExternalFrame {
    /// Positions in Swift's shortest round-trip decimal form: the program reads back the very
    /// doubles the engine holds.
    static func extendedXYZ(_ configuration: Configuration) throws -> String {
        var comment = "Properties=species:S:1:pos:R:3"
        if let cell = configuration.cell {
            let rows = [cell.matrix.rows.0, cell.matrix.rows.1, cell.matrix.rows.2]
            let lattice = rows.flatMap { [$0.x, $0.y, $0.z] }.map { "\($0)" }.joined(separator: " ")
            comment = "Lattice=\"\(lattice)\" pbc=\"\(cell.pbc.description)\" " + comment
        } else {
            comment += " pbc=\"F F F\""
        }
        var lines = ["\(configuration.count)", comment]
        lines.reserveCapacity(configuration.count + 2)
        for (i, (z, r)) in zip(configuration.atomicNumbers, configuration.positions).enumerated() {
            guard let symbol = Elements.symbol(of: z) else { throw PotentialError("external: atom \(i) has atomic number \(z), no element") }
            lines.append("\(symbol) \(r.x) \(r.y) \(r.z)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Energy, forces and virial from what an external program printed (``ExternalPotential``).
enum ExternalAnswer {
    static func decode(_ output: String, for configuration: Configuration, command: String) throws -> ForceResult {
        func failure(_ what: String) -> ExternalProgramError { ExternalProgramError(command, what) }
        // `\r\n` is one Character in Swift: splitting on "\n" alone would not split it.
        guard let line = output.split(whereSeparator: \.isNewline).last(where: { $0.drop(while: \.isWhitespace).hasPrefix("{") }) else {
            throw failure("no line of its output starts with '{' (expected a JSON object with energy and forces)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw failure("its last line starting with '{' is not a JSON object: \(line.prefix(200))")
        }
        func number(_ value: Any?, _ name: String) throws -> Double {
            // JSON's true arrives as an NSNumber of type "c" and would read as 1 (as in the dataset reader).
            guard let n = value as? NSNumber, String(cString: n.objCType) != "c" else {
                throw failure("\(name) is missing or not a number")
            }
            let x = n.doubleValue
            guard x.isFinite else { throw failure("\(name) is not finite") }
            return x
        }
        func rows(_ value: Any?, _ name: String, count: Int) throws -> [Vec3] {
            guard let rows = value as? [Any] else { throw failure("\(name) is missing or not an array") }
            guard rows.count == count else { throw failure("\(name) has \(rows.count) rows, expected \(count)") }
            return try rows.enumerated().map { i, row in
                guard let xyz = row as? [Any], xyz.count == 3 else { throw failure("\(name)[\(i)] is not 3 numbers") }
                return Vec3(try number(xyz[0], "\(name)[\(i)][0]"), try number(xyz[1], "\(name)[\(i)][1]"),
                            try number(xyz[2], "\(name)[\(i)][2]"))
            }
        }
        let n = configuration.count
        if let atoms = object["atoms"], (try? number(atoms, "atoms")) != Double(n) {
            throw failure("it answered for \(atoms) atoms; the configuration has \(n)")
        }
        let energy = try number(object["energy"], "energy")
        let forces = try rows(object["forces"], "forces", count: n)
        let virial = try ForceResult.answeredVirial(for: configuration, forces: forces) { cell in
            guard let value = object["stress"] else {
                throw failure("no stress for a cell periodic along every axis (eV/Å³, ASE's sign); the pressure needs it")
            }
            let stress: Mat3
            if let voigt = value as? [Any], voigt.count == 6, !(voigt[0] is [Any]) {
                // ASE's `get_stress()`.
                stress = Mat3(aseVoigt: try voigt.enumerated().map { try number($0.element, "stress[\($0.offset)]") })
            } else {
                let s = try rows(value, "stress", count: 3)
                stress = Mat3(s[0], s[1], s[2])
            }
            return -cell.volume * stress
        }
        return ForceResult(energy: energy, forces: forces, virial: virial)
    }
}
