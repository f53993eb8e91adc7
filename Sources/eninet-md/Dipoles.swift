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
        is there. Every other variable is copied unchanged. The new file is written under a \
        temporary name and renamed over the old one (or written to --output), so a failure \
        leaves the input as it was. AMBER NetCDF stores no elements: give --topology or --elements.
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
        let symbols = try atomElements.elements.map(parseElementList) ?? TrajectoryFile.topologySymbols(path: atomElements.topology ?? "")
        let source = atomElements.elements != nil ? "--elements" : (atomElements.topology ?? "")
        guard symbols.count == reader.atomCount else {
            throw InputError("\(source) names \(symbols.count) atoms but \(trajectory) has \(reader.atomCount)")
        }
        let atomicNumbers = try symbols.enumerated().map { i, s in
            guard let z = Elements.atomicNumber(of: s) else { throw InputError("\(source): atom \(i): unknown element '\(s)'") }
            return z
        }
        let masses = try atomicNumbers.enumerated().map { i, z in
            guard let m = Elements.mass(of: z), m > 0 else { throw InputError("\(source): atom \(i) (\(symbols[i])) has no standard mass") }
            return m
        }
        let evaluator = try DipoleEvaluator(path: model, precision: double ? .double : .float)

        var extras: [AmberExtraVariable] = []
        for (name, width) in reader.extraVariableWidths.sorted(by: { $0.key < $1.key }) where name != AmberExtraVariable.dipole.name {
            guard width == 1 || width == 3 else {
                printError("warning: \(trajectory): variable '\(name)' (\(width) values per frame) is not copied")
                continue
            }
            extras.append(AmberExtraVariable(name: name, width: width, units: try reader.units(of: name) ?? ""))
        }
        extras.append(.dipole)

        let destination = output ?? trajectory
        let temporary = destination + ".tmp"
        do {
            let writer = try AmberTrajectoryWriter(path: temporary, atomCount: reader.atomCount, velocities: reader.hasVelocities,
                                                   forces: reader.hasForces, periodic: reader.hasCell, extras: extras,
                                                   title: reader.title)
            for index in 0..<reader.frameCount {
                var frame = try reader.frame(index)
                let mu: Vec3
                do {
                    mu = try evaluator.dipole(atomicNumbers: atomicNumbers, positions: frame.positions, cell: frame.cell, masses: masses)
                } catch {
                    throw InputError("\(trajectory): frame \(index): \(error)")
                }
                frame.extras[AmberExtraVariable.dipole.name] = [mu.x, mu.y, mu.z]
                try writer.write(frame)
            }
            try writer.close()
            try reader.close()
            guard rename(temporary, destination) == 0 else {
                throw InputError("\(destination): cannot replace it with \(temporary) (errno \(errno))")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        print("wrote dipoles of \(reader.frameCount) frames to \(destination)")
    }
}
