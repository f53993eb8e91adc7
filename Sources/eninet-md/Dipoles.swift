import Analysis
import ArgumentParser
import ENINet
import Foundation
import Geometry
import Trajectory

/// `eninet-md dipoles --model M TRAJ`: adds a dipole model's dipole series to a trajectory
/// written without one, so that `analyze ir` can use it.
struct Dipoles: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipoles",
        abstract: "Add a dipole model's dipoles to an AMBER NetCDF trajectory.",
        discussion: """
        Evaluates the dipole model (model.target = "dipole") on every frame and stores the \
        result in the trajectory's `dipole` variable (e·Å, frame × spatial), replacing one that \
        is there. The file is rebuilt from its frames: the AMBER variables and the extra \
        per-frame variables of 1 or 3 values are copied; when it holds others, it is left \
        alone unless --output names a new file (which then goes without them, as a warning \
        says). The new file is written under a temporary name and renamed over the old one \
        (or written to --output), so a failure leaves the input as it was. AMBER NetCDF \
        stores no elements: give --topology or --elements.
        """)

    @Option(help: "Dipole model file (.safetensors).")
    var model: String

    @Argument(help: "AMBER NetCDF trajectory (.nc).")
    var trajectory: String

    @OptionGroup var atomElements: AtomElementOptions

    @Option(help: ArgumentHelp("Write the trajectory with dipoles here instead of replacing the input.", valueName: "out.nc"))
    var output: String?

    @Flag(help: "Double-precision network arithmetic (default: float).")
    var double = false

    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        guard (atomElements.topology == nil) != (atomElements.elements == nil) else {
            throw ValidationError("give exactly one of --topology and --elements (AMBER NetCDF stores no elements)")
        }
    }

    func run() throws {
        threadOptions.apply()
        let reader = try AmberTrajectoryReader(path: trajectory)
        guard !reader.isRestart else { throw InputError("\(trajectory): a restart holds one frame; give a trajectory") }
        let symbols = try atomElements.elements.map { try parseElementList($0, atomCount: reader.atomCount) } ?? TrajectoryFile.topologySymbols(path: atomElements.topology ?? "")
        let source = atomElements.elements != nil ? "--elements" : (atomElements.topology ?? "")
        guard symbols.count == reader.atomCount else {
            throw InputError("\(source) names \(symbols.count) atoms but \(trajectory) has \(reader.atomCount)")
        }
        let atomicNumbers = try symbols.enumerated().map { i, s in
            guard let z = Elements.atomicNumber(of: s) else { throw InputError("\(source): atom \(i): unknown element '\(s)'") }
            return z
        }
        let evaluator = try DipoleEvaluator(path: model, precision: double ? .double : .float)

        guard reader.frameCount > 0 else { throw InputError("\(trajectory): no frames") }
        // --output ./traj.nc is the input itself, rebuilt in place.
        let output = self.output.flatMap { canonicalPath($0) == canonicalPath(trajectory) ? nil : $0 }
        if let output {
            try AtomicFile.checkDistinct(outputs: [("--output", output)],
                                         inputs: [("--model", model)] + (atomElements.topology.map { [("--topology", $0)] } ?? []))
        }
        if let output, ["xyz", "extxyz", "pdb", "csv", "dcd", "xtc", "trr"].contains(URL(fileURLWithPath: output).pathExtension.lowercased()) {
            throw InputError("\(output): --output is an AMBER NetCDF trajectory; give it a NetCDF name such as .nc")
        }

        var extras: [AmberExtraVariable] = []
        var dropped: [String] = []
        for (name, width) in reader.extraVariableWidths.sorted(by: { $0.key < $1.key }) where name != AmberExtraVariable.dipole.name {
            guard width == 1 || width == 3 else {
                dropped.append("'\(name)' (\(width) values per frame)")
                continue
            }
            extras.append(AmberExtraVariable(name: name, width: width, units: try reader.units(of: name) ?? ""))
        }
        extras.append(.dipole)
        let copied = Set(extras.map(\.name))
        dropped += reader.variableNames.filter { !AmberNetCDF.standardVariables.contains($0) && !copied.contains($0) }
            .filter { name in !dropped.contains { $0.hasPrefix("'\(name)'") } }.sorted().map { "'\($0)'" }
        // The file is rebuilt from its frames: what the writer cannot hold would be lost, and in
        // place that is the only copy (charges(frame, atom) and masses(atom) vanished).
        if !dropped.isEmpty {
            guard output != nil else {
                throw InputError("\(trajectory): rewriting it with dipoles would drop \(dropped.joined(separator: ", ")); give --output to write a new file and keep this one")
            }
            printError("warning: \(trajectory): \(dropped.joined(separator: ", ")) not copied to \(output ?? "")")
        }

        // In place, the rebuilt file takes the place (and permissions) of the user's.
        let destination = output ?? trajectory
        try replacingFile(at: destination) { temporary in
            let writer = try AmberTrajectoryWriter(path: temporary, atomCount: reader.atomCount, velocities: reader.hasVelocities,
                                                   forces: reader.hasForces, periodic: reader.hasCell, extras: extras,
                                                   title: reader.title)
            for index in 0..<reader.frameCount {
                var frame = try reader.frame(index)
                let mu: Vec3
                do {
                    mu = try evaluator.dipole(atomicNumbers: atomicNumbers, positions: frame.positions, cell: frame.cell)
                } catch {
                    throw InputError("\(trajectory): frame \(index): \(error)")
                }
                frame.extras[AmberExtraVariable.dipole.name] = [mu.x, mu.y, mu.z]
                try writer.write(frame)
            }
            try writer.close()
            try reader.close()
        }
        print("wrote dipoles of \(reader.frameCount) frames to \(destination)")
    }
}
