import ArgumentParser
import Deck
import Foundation
import Potentials
import Trajectory

/// `eninet-md ipi-client --model M --structure S --address A`: an ENINet model as the force
/// code of an i-PI server (i-PI's path-integral and replica dynamics, ASE's
/// `SocketIOCalculator`, or a `run` with `potential.type = "ipi"`).
struct IPIClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ipi-client",
        abstract: "Serve a model's energy, forces and virial to an i-PI server.",
        discussion: """
        Connects to the server (retrying until --connect-timeout) and answers every request until \
        it sends EXIT or closes the connection. The server sends positions and a cell (atomic \
        units); the elements are the structure file's, in its order. A zero cell is a molecule; \
        any other is periodic along the structure file's periodic axes (all three when the file \
        has no lattice).
        """)

    @Option(help: "Model file (.safetensors).")
    var model: String

    @Option(help: "Structure file (.xyz, .extxyz, .pdb) whose first frame gives the elements, their order and the periodic axes.")
    var structure: String

    @Option(help: "The server: unix:NAME (the socket /tmp/ipi_NAME) or HOST:PORT (HOST localhost or a numeric IPv4 address).")
    var address: String

    @Option(help: "Seconds to keep trying to connect.")
    var connectTimeout: Double = 60

    @Flag(help: "Run the network in Double instead of Float.")
    var double = false

    @OptionGroup var threadOptions: ThreadOptions

    func validate() throws {
        guard let parsed = IPISettings.address(parsing: address) else {
            throw ValidationError("--address \(address) must be unix:NAME or HOST:PORT")
        }
        if case .tcp(let host, _) = parsed, host == "*" { throw ValidationError("--address: a client connects to one host, not *") }
        guard connectTimeout > 0, connectTimeout.isFinite else { throw ValidationError("--connect-timeout must be positive") }
    }

    func run() throws {
        threadOptions.apply()
        guard let parsed = IPISettings.address(parsing: address) else { throw ValidationError("--address \(address) must be unix:NAME or HOST:PORT") }
        guard let first = try StructureFile.read(path: structure).first else { throw ValidationError("\(structure): no frame") }
        let potential = try RunSetup.eninetPotential(ENINetSettings(modelPath: model, precision: double ? .double : .float))
        StopSignal.install()
        defer { StopSignal.uninstall() }
        let driver = IPIDriver(address: RunSetup.socketAddress(parsed), potential: potential, atomicNumbers: first.atomicNumbers,
                               periodicity: first.cell?.pbc ?? .all, stopRequested: { StopSignal.requested })
        let answered = try driver.run(connectTimeout: connectTimeout)
        print("ipi-client: answered \(answered) evaluation\(answered == 1 ? "" : "s") for \(RunSetup.socketAddress(parsed))")
    }
}
