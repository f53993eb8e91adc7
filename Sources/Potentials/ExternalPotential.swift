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
/// for a cell periodic along every axis, `stress` (`[3][3]`, eV/Å³, ASE's sign: −virial/volume).
/// That is what `eninet-md evaluate --structure - --json` prints, so an ENINet model served by
/// another `eninet-md` is an external program too.
///
/// Anything else is an error that names the command: a non-zero exit (with the end of what the
/// program wrote to standard error), no JSON line, a missing or non-finite number, a force
/// count that is not the atom count, no stress for a periodic cell (the logged pressure would
/// be wrong without it), or no answer within `timeout` seconds (the program is then killed).
public final class ExternalPotential: Potential {
    public let name = "external"
    public let command: String
    public let workingDirectory: String?
    /// Seconds one call may take.
    public let timeout: Double
    /// How many times the program has run.
    public private(set) var calls = 0
    /// Where the frame, the answer and the error text of a call lie: files rather than pipes,
    /// so that a program writing much before it reads cannot block on a full pipe.
    private let scratch: URL

    public init(command: String, workingDirectory: String? = nil, timeout: Double = 3600) throws {
        guard !command.allSatisfy(\.isWhitespace) else { throw PotentialError("external: the command is empty") }
        guard timeout > 0, timeout.isFinite else { throw PotentialError("external: timeout \(timeout) s must be positive") }
        self.command = command
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("eninetmd-external-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        } catch {
            throw PotentialError("external: cannot create the scratch directory \(scratch.path): \(error.localizedDescription)")
        }
    }

    deinit { try? FileManager.default.removeItem(at: scratch) }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        let answer = try run(input: try Self.extendedXYZ(configuration))
        calls += 1
        return try Self.result(of: answer, for: configuration, command: command)
    }

    /// One frame of extended XYZ, positions in Swift's shortest round-trip decimal form (the
    /// program reads back the very doubles the engine holds).
    static func extendedXYZ(_ configuration: Configuration) throws -> String {
        var comment = "Properties=species:S:1:pos:R:3"
        if let cell = configuration.cell {
            let rows = [cell.matrix.rows.0, cell.matrix.rows.1, cell.matrix.rows.2]
            let lattice = rows.flatMap { [$0.x, $0.y, $0.z] }.map { "\($0)" }.joined(separator: " ")
            comment = "Lattice=\"\(lattice)\" pbc=\"\(cell.pbc.description)\" " + comment
        }
        var lines = ["\(configuration.count)", comment]
        lines.reserveCapacity(configuration.count + 2)
        for (i, (z, r)) in zip(configuration.atomicNumbers, configuration.positions).enumerated() {
            guard let symbol = Elements.symbol(of: z) else { throw PotentialError("external: atom \(i) has atomic number \(z), no element") }
            lines.append("\(symbol) \(r.x) \(r.y) \(r.z)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The program's standard output, after checking that it ran and ended in time.
    private func run(input: String) throws -> String {
        let inputURL = scratch.appendingPathComponent("frame.extxyz")
        let outputURL = scratch.appendingPathComponent("answer")
        let errorURL = scratch.appendingPathComponent("error")
        let process = Process()
        do {
            try input.write(to: inputURL, atomically: false, encoding: .utf8)
            for url in [outputURL, errorURL] { try Data().write(to: url) }
            process.standardInput = try FileHandle(forReadingFrom: inputURL)
            process.standardOutput = try FileHandle(forWritingTo: outputURL)
            process.standardError = try FileHandle(forWritingTo: errorURL)
        } catch {
            throw PotentialError("external: cannot prepare the program's files in \(scratch.path): \(error.localizedDescription)")
        }
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let finished = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in finished.signal() }
        do {
            try process.run()
        } catch {
            throw PotentialError("external: cannot start '\(command)': \(error.localizedDescription)")
        }
        if finished.wait(timeout: .now() + timeout) == .timedOut {
            // The shell leads a process group of its own (Foundation starts it so), and the
            // whole group is stopped: the program the shell started keeps the output files
            // open, and Foundation reports the shell's end only once they are all closed.
            kill(-process.processIdentifier, SIGTERM)
            if finished.wait(timeout: .now() + 2) == .timedOut {
                kill(-process.processIdentifier, SIGKILL)
                _ = finished.wait(timeout: .now() + 5)
            }
            throw PotentialError("external: '\(command)' gave no answer within \(timeout) s (stopped)")
        }
        let errorText = (try? String(contentsOf: errorURL, encoding: .utf8)) ?? ""
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit ? "exited with status \(process.terminationStatus)"
                                                           : "was killed by signal \(process.terminationStatus)"
            throw PotentialError("external: '\(command)' \(how)" + Self.tail(errorText))
        }
        guard let output = try? String(contentsOf: outputURL, encoding: .utf8) else {
            throw PotentialError("external: '\(command)' printed no UTF-8 text" + Self.tail(errorText))
        }
        return output
    }

    /// The last lines of the program's error text, for the message.
    private static func tail(_ text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).suffix(5)
        return lines.isEmpty ? "" : "; its standard error ends:\n" + lines.joined(separator: "\n")
    }

    /// Energy, forces and virial from the program's answer (see the type's documentation).
    static func result(of output: String, for configuration: Configuration, command: String) throws -> ForceResult {
        func failure(_ what: String) -> PotentialError { PotentialError("external: '\(command)': \(what)") }
        guard let line = output.split(separator: "\n").last(where: { $0.drop(while: \.isWhitespace).hasPrefix("{") }) else {
            throw failure("no line of its output starts with '{' (expected a JSON object with energy and forces)")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw failure("its last JSON line is not a JSON object: \(line.prefix(200))")
        }
        func number(_ value: Any?, _ name: String) throws -> Double {
            guard let x = (value as? NSNumber)?.doubleValue else { throw failure("\(name) is missing or not a number") }
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
        let virial: Mat3
        if let cell = configuration.cell, cell.pbc.x && cell.pbc.y && cell.pbc.z {
            guard object["stress"] != nil else {
                throw failure("no stress for a cell periodic along every axis (eV/Å³, ASE's sign); the pressure needs it")
            }
            let s = try rows(object["stress"], "stress", count: 3)
            virial = -cell.volume * Mat3(s[0], s[1], s[2])
        } else {
            // Without a cell (or periodic along fewer axes) no pressure is logged; for a
            // translation-invariant energy, −∂E/∂ε is Σ r ⊗ F.
            virial = zip(configuration.positions, forces).reduce(Mat3.zero) { $0 + Mat3.outer($1.0, $1.1) }
        }
        return ForceResult(energy: energy, forces: forces, virial: virial)
    }
}
