import ArgumentParser
import ENINet
import Foundation
import Geometry
import Potentials
import Trajectory

/// `eninet-md evaluate --model M --structure S`: energy, forces and stress (or the dipole or
/// polarizability of models trained on those) of every frame of a structure file.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate a model on structures or a dataset.",
        discussion: """
        Reads every frame of the structure file (.xyz/.extxyz/.pdb; periodic when the file has a \
        lattice) and prints, per frame, the model's outputs: energy (eV), forces (eV/Å) and, for \
        frames periodic along all three axes, the stress (eV/Å³, ASE sign: −virial/volume, no kinetic part) for energy \
        models; the dipole (e·Å) or polarizability (e·Å²/V) for models trained on those. With \
        --json, one JSON object per frame and line.
        """)

    @Option(help: "Model file (.safetensors; configuration in its metadata or in a .json beside it).")
    var model: String

    @Option(help: "Structure file (.xyz, .extxyz, .pdb), or - for extended XYZ on standard input (an external potential's frame).")
    var structure: String?

    @Option(help: "Labelled dataset (extended XYZ with energies and forces): print MAE/RMSE per element and overall.")
    var data: String?

    @Option(help: "With --data: write a parity plot (SVG) of energies per atom and force components.")
    var parity: String?

    @Flag(help: "Print one JSON object per frame and line.")
    var json = false

    @Flag(exclusivity: .exclusive, help: "Network arithmetic precision (default: double for --structure with --json, float otherwise).")
    var precision: PrecisionFlag?

    enum PrecisionFlag: String, EnumerableFlag {
        case float, double
    }

    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        guard (structure == nil) != (data == nil) else { throw ValidationError("give exactly one of --structure and --data") }
        if let parity {
            guard let data else { throw ValidationError("--parity plots a labelled dataset: it needs --data") }
            // `--parity d.extxyz` replaced the dataset with the plot.
            if let input = [("--data", data), ("--model", model)].first(where: { canonicalPath($0.1) == canonicalPath(parity) }) {
                throw ValidationError("--parity \(parity) is the \(input.0) file; writing the plot would destroy it")
            }
        }
    }

    func run() throws {
        threadOptions.apply()
        // Issue 5's JSON interface is for scripts that compare numbers: Double unless --float.
        let defaultPrecision: PrecisionFlag = json && structure != nil ? .double : .float
        let network = try ENINetModel(contentsOf: model, precision: (precision ?? defaultPrecision) == .double ? .double : .float)
        if let data { return try evaluateDataset(network, path: data) }
        guard let structure else { throw ValidationError("give exactly one of --structure and --data") }
        let frames = structure == "-" ? try Self.standardInputFrames() : try StructureFile.read(path: structure)
        guard !frames.isEmpty else { throw EvaluateError(description: "\(structure): no frames") }
        let target = network.configuration.target
        let neighborList = network.makeNeighborList(skin: 1.0)
        var nonFiniteFrames: [Int] = []
        // An empty frame has no energy to predict; 0.0 with exit 0 read as a result (`minimize`
        // and `run` refuse such structures too).
        if let empty = frames.firstIndex(where: { $0.count == 0 }) {
            throw EvaluateError(description: "\(structure): frame \(empty) has no atoms")
        }
        for (index, frame) in frames.enumerated() {
            let graph: ENINetGraph
            let out: ENINetOutput
            do {
                graph = try network.graph(positions: frame.positions, cell: frame.cell, neighborList: neighborList)
                out = try network.evaluate(atomicNumbers: frame.atomicNumbers, positions: frame.positions, graph: graph,
                                           forces: target == .energy)
            } catch {
                throw EvaluateError(description: "\(structure): frame \(index): \(error)")
            }
            var object: [(String, String)] = [("frame", "\(index)"), ("atoms", "\(frame.count)")]
            switch target {
            case .energy:
                object.append(("energy", Self.number(out.energy)))
                object.append(("forces", "[" + out.forces.map(Self.vector).joined(separator: ",") + "]"))
                // The stress divides by the cell's volume: along a non-periodic axis that length
                // is vacuum of any size, so a slab or wire has none (as `run` logs no pressure).
                if let cell = frame.cell, cell.pbc.x && cell.pbc.y && cell.pbc.z {
                    let stress = (-1 / cell.volume) * out.virial
                    object.append(("stress", Self.matrix(stress)))
                }
            case .dipole:
                object.append(("dipole", Self.vector(out.dipole(positions: frame.positions, atomicNumbers: frame.atomicNumbers))))
            case .polarizability:
                object.append(("polarizability", Self.matrix(out.polarizability(positions: frame.positions, atomicNumbers: frame.atomicNumbers))))
            }
            // `number` prints a non-finite value as null (JSON has no NaN); the frame is still
            // printed, and the run ends with an error naming it.
            if object.contains(where: { $0.1.contains("null") }) { nonFiniteFrames.append(index) }
            if json {
                print("{" + object.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
            } else {
                print("frame \(index): \(frame.count) atoms, \(graph.edgeCount) edges, \(graph.tripletCount) triplets")
                for (key, value) in object.dropFirst(2) where key != "forces" { print("  \(key) (\(Self.units[key] ?? "")): \(value)") }
                if target == .energy {
                    let largest = out.forces.map(norm).max() ?? 0
                    print("  max |force|: \(Self.number(largest)) eV/Å")
                }
            }
        }
        if let first = nonFiniteFrames.first {
            throw EvaluateError(description: "\(structure): frame \(first): the model's outputs are not finite (printed as null)"
                                + (nonFiniteFrames.count == 2 ? "; so are those of 1 more frame" : "")
                                + (nonFiniteFrames.count > 2 ? "; so are those of \(nonFiniteFrames.count - 1) more frames" : ""))
        }
    }

    /// Extended XYZ read from standard input: the frame an external potential
    /// (`potential.type = "external"`) hands to its program.
    static func standardInputFrames() throws -> [Structure] {
        let data = try boundedStandardInput()
        guard let text = String(data: data, encoding: .utf8) else {
            throw EvaluateError(description: "standard input: not UTF-8 text")
        }
        return try ExtendedXYZ.read(text: text, path: "standard input")
    }

    /// Standard input to its end, refused as soon as it cannot be extended XYZ: reading to the
    /// end first hung on `yes |` and filled memory from `/dev/zero`.
    static func boundedStandardInput(limit: Int = 1 << 30) throws -> Data {
        var data = Data()
        var firstLineChecked = false
        while let chunk = try FileHandle.standardInput.read(upToCount: 1 << 16), !chunk.isEmpty {
            data.append(chunk)
            if !firstLineChecked {
                if let newline = data.firstIndex(of: 0x0A) {
                    let line = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
                    let count = line.trimmingCharacters(in: CharacterSet.whitespacesAndNewlines.union(CharacterSet(charactersIn: "\u{FEFF}")))
                    guard let atoms = Int(count), atoms >= 0 else {
                        throw EvaluateError(description: "standard input:1: expected the number of atoms of an extended-XYZ frame, found '\(count.prefix(60))'")
                    }
                    firstLineChecked = true
                } else if data.count > 1 << 16 {
                    throw EvaluateError(description: "standard input:1: no line end in the first 64 KB; expected the number of atoms of an extended-XYZ frame")
                }
            }
            if data.count > limit {
                throw EvaluateError(description: "standard input: more than \(limit >> 20) MB; give the file with --structure PATH instead")
            }
        }
        return data
    }

    /// What the plain-text output prints beside each value; the JSON keys are documented in `--help`.
    static let units = ["energy": "eV", "stress": "eV/Å³, ASE's sign: negative under compression", "dipole": "e·Å",
                        "polarizability": "e·Å²/V"]

    static func number(_ x: Double) -> String {
        x.isFinite ? "\(x)" : "null"
    }

    static func vector(_ v: Vec3) -> String { "[\(number(v.x)),\(number(v.y)),\(number(v.z))]" }

    static func matrix(_ m: Mat3) -> String { "[\(vector(m[0])),\(vector(m[1])),\(vector(m[2]))]" }
}

/// A failure while evaluating a structure (reported with the file and frame, exit code 1).
struct EvaluateError: Error, CustomStringConvertible {
    let description: String
}
