import ArgumentParser
import Deck
import Foundation
import Geometry
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
        has no lattice, with a warning), or ignored with --molecule.
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

    @Flag(help: "Ignore the server's cell: a molecule in a box (ASE sends its atoms' cell whatever their pbc).")
    var molecule = false

    @OptionGroup var threadOptions: ThreadOptions

    /// `--address` read, or an error naming the option.
    private func serverAddress() throws -> SocketAddress {
        guard let parsed = IPISettings.address(parsing: address) else {
            throw ValidationError("--address \(address) must be unix:NAME or HOST:PORT")
        }
        if case .tcp(let host, _) = parsed, host == "*" { throw ValidationError("--address: a client connects to one host, not *") }
        return RunSetup.socketAddress(parsed)
    }

    func validate() throws {
        _ = try serverAddress()
        guard connectTimeout > 0, connectTimeout.isFinite else { throw ValidationError("--connect-timeout must be positive") }
    }

    func run() throws {
        threadOptions.apply()
        let server = try serverAddress()
        guard let first = try StructureFile.read(path: structure).first else { throw InputError("\(structure): no frame") }
        let potential = try RunSetup.eninetPotential(ENINetSettings(modelPath: model, precision: double ? .double : .float))
        // The structure itself first: an element the model does not know, or coinciding atoms,
        // are the file's mistake, better named before a server waits on them.
        do {
            _ = try potential.compute(Configuration(atomicNumbers: first.atomicNumbers, positions: first.positions,
                                                    cell: molecule ? nil : first.cell))
        } catch {
            throw InputError("\(structure): \(error)")
        }
        StopSignal.install()
        defer { StopSignal.uninstall() }
        let driver = IPIDriver(address: server, potential: potential, atomicNumbers: first.atomicNumbers,
                               periodicity: molecule ? .none : first.cell?.pbc ?? .all, structureHasCell: molecule || first.cell != nil,
                               warn: { printError("warning: \($0)") }, stopRequested: { StopSignal.requested })
        let ending = try driver.run(connectTimeout: connectTimeout)
        // Something listening there that is no i-PI server (a wrong port, a proxy) accepts and
        // closes: not a finished run.
        if ending.answered == 0 && !ending.serverSentExit {
            throw InputError("ipi server at \(server): closed the connection before asking for anything (is it an i-PI server?)")
        }
        let answered = "answered \(ending.answered) evaluation\(ending.answered == 1 ? "" : "s") for \(server)"
        print("ipi-client: " + answered + (ending.serverSentExit ? "" : "; the server closed the connection without EXIT (ASE's server ends so; a failed one too)"))
    }
}
