import ArgumentParser
import Trajectory

/// `eninet-md convert IN OUT`: between AMBER NetCDF trajectories (`.nc`), AMBER NetCDF
/// restarts (`.ncrst`, `.rst7`) and structure files (`.xyz`, `.extxyz`, `.pdb`).
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert between NetCDF trajectories, restarts and extended XYZ.",
        discussion: """
        Formats follow the extensions: .nc (AMBER NetCDF trajectory), .ncrst/.rst7 (AMBER NetCDF \
        restart), .xyz/.extxyz (ASE extended XYZ), .pdb. Units are converted at the boundary \
        (NetCDF: ps, Å/ps, kcal/mol/Å; extended XYZ: eV/Å, ASE momenta). NetCDF stores no \
        elements: converting it to XYZ or PDB needs --symbols-from. A restart output takes the \
        last selected frame.
        """)

    @Argument(help: "Input file (.nc, .ncrst, .rst7, .xyz, .extxyz, .pdb).")
    var input: String

    @Argument(help: "Output file (.nc, .ncrst, .rst7, .xyz, .extxyz, .pdb).")
    var output: String

    @Option(parsing: .unconditional, help: "Frames START:END (end exclusive, negatives count from the end), or one index.")
    var frames: String?

    @Option(parsing: .unconditional, help: "Keep every N-th selected frame.")
    var stride: Int = 1

    @Option(name: [.customLong("symbols-from"), .customLong("topology")],
            help: "Structure file (.xyz/.extxyz/.pdb) giving the elements of a NetCDF input, same atom order.")
    var symbolsFrom: String?

    @Option(parsing: .unconditional, help: "Time between structure-file frames that have no time_fs key, in fs.")
    var frameIntervalFs: Double = 1

    @Flag(help: "Do not copy velocities.")
    var noVelocities = false

    @Flag(help: "Do not copy forces.")
    var noForces = false

    func run() throws {
        let selection = try frames.map { try FrameSelection(parsing: $0, stride: stride) }
            ?? FrameSelection(stride: stride)
        guard stride >= 1 else { throw ValidationError("--stride must be at least 1") }
        // Times of 1e300 fs overflow the file's single-precision time; 0 or less repeat or reverse it.
        guard frameIntervalFs > 0, frameIntervalFs <= 1e12 else {
            throw ValidationError("--frame-interval-fs must be above 0 and at most 1e12 fs; got \(frameIntervalFs)")
        }
        let options = TrajectoryConverter.Options(frames: selection, symbolsFrom: symbolsFrom, frameIntervalFs: frameIntervalFs,
                                                  keepVelocities: !noVelocities, keepForces: !noForces)
        let count = try TrajectoryConverter.convert(input: input, output: output, options: options)
        print("wrote \(count) frame\(count == 1 ? "" : "s") to \(output)")
    }
}
