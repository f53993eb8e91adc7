import Foundation

/// Everything an input deck says, parsed, validated and in internal units
/// (Å, fs, eV, K). Produced by ``DeckLoader``; see `Docs/deck.md`.
public struct DeckSettings: Equatable, Sendable {
    /// Absolute path of the deck file (empty for decks built in memory).
    public var deckPath: String
    public var format: DeckFormat
    public var title: String
    /// What the deck asks for; `eninet-md minimize` ignores it and minimises.
    public var task: DeckTask
    public var system: SystemSettings
    public var potential: PotentialSettings
    public var dynamics: DynamicsSettings
    public var minimize: MinimizeSettings
    public var output: OutputSettings
    /// Harmless oddities (AMBER keys without meaning here, ignored values),
    /// each a single `path:line: message` line, for the CLI to print.
    public var warnings: [String]

    public init(deckPath: String, format: DeckFormat, title: String, task: DeckTask,
                system: SystemSettings, potential: PotentialSettings, dynamics: DynamicsSettings,
                minimize: MinimizeSettings, output: OutputSettings, warnings: [String]) {
        self.deckPath = deckPath
        self.format = format
        self.title = title
        self.task = task
        self.system = system
        self.potential = potential
        self.dynamics = dynamics
        self.minimize = minimize
        self.output = output
        self.warnings = warnings
    }
}

extension DeckSettings {
    /// A few lines describing the resolved settings, for the head of a log.
    public var summaryLines: [String] {
        var lines: [String] = []
        if !title.isEmpty { lines.append("title: \(title)") }
        lines.append("deck: \(deckPath) (\(format.rawValue)), task: \(task.rawValue)")
        lines.append("structure: \(system.structurePath)" + (system.replicate == SIMD3(1, 1, 1) ? "" : " replicated \(system.replicate.x)x\(system.replicate.y)x\(system.replicate.z)"))
        lines.append("potential: \(potential.description)")
        switch task {
        case .dynamics:
            var d = "dynamics: \(dynamics.integrator.name), \(dynamics.steps) steps of \(dynamics.timestepFs) fs"
            if let t = dynamics.temperatureK { d += ", target \(t) K" }
            switch dynamics.integrator {
            case .langevin(let g): d += ", friction \(g) ps^-1"
            case .bussi(let tau): d += ", tau \(tau) fs"
            case .verlet: break
            }
            if let b = dynamics.barostat {
                d += ", \(b.anisotropic ? "anisotropic" : "isotropic") Monte Carlo barostat at \(b.pressureBar) bar every \(b.every) steps"
            }
            if let t = dynamics.initialTemperatureK { d += ", initial velocities at \(t) K" }
            d += ", seed \(dynamics.seed)" + (dynamics.seedFromClock ? " (from clock)" : "")
            lines.append(d)
        case .minimize:
            lines.append("minimize: at most \(minimize.maxSteps) steps, fmax \(minimize.fmaxEVPerA) eV/A")
        }
        return lines
    }
}

extension PotentialSettings: CustomStringConvertible {
    public var description: String {
        func cut(_ c: Double, _ t: Truncation, _ skin: Double) -> String {
            let mode: String
            switch t {
            case .shift: mode = "shifted"
            case .none: mode = "truncated"
            case .switched(let s): mode = "switched from \(s) A"
            }
            return "cutoff \(c) A \(mode), skin \(skin) A"
        }
        switch self {
        case .lennardJones(let p): return "lj epsilon \(p.epsilonEV) eV, sigma \(p.sigmaA) A, " + cut(p.cutoffA, p.truncation, p.skinA)
        case .morse(let p): return "morse D \(p.depthEV) eV, alpha \(p.alphaPerA) 1/A, r0 \(p.r0A) A, " + cut(p.cutoffA, p.truncation, p.skinA)
        case .harmonic(let h): return "harmonic \(h.bonds.count) bonds, \(h.restraints.count) restraints"
        case .eninet(let e): return "eninet \(e.modelPath) (\(e.precision.rawValue)), skin \(e.skinA) A"
        case .external(let x): return "external '\(x.command)' in \(x.workingDirectory), timeout \(x.timeoutS) s"
        case .ipi(let i): return "ipi client at \(i.address), timeout \(i.timeoutS) s"
        case .sum(let terms): return "sum of " + terms.map { "[\($0.description)]" }.joined(separator: " + ")
        }
    }
}

public enum DeckFormat: String, Equatable, Sendable {
    case toml
    /// AMBER `mdin` with a `&cntrl` namelist (and optionally `&eninetmd`).
    case mdin
}

public enum DeckTask: String, Equatable, Sendable {
    /// Molecular dynamics (`task = "md"`, AMBER `imin = 0`).
    case dynamics = "md"
    /// Energy minimisation (`task = "minimize"`, AMBER `imin = 1`).
    case minimize
}

public struct SystemSettings: Equatable, Sendable {
    /// Absolute path of an existing structure file.
    public var structurePath: String
    /// Supercell repetitions along a, b, c (each ≥ 1).
    public var replicate: SIMD3<Int>

    public init(structurePath: String, replicate: SIMD3<Int> = SIMD3(1, 1, 1)) {
        self.structurePath = structurePath
        self.replicate = replicate
    }
}

// MARK: - Potentials

/// How a pair potential is brought to zero at its cutoff.
public enum Truncation: Equatable, Sendable {
    /// Energy shifted so that E(cutoff) = 0; forces unchanged (ASE, LAMMPS `pair_modify shift yes`).
    case shift
    /// Smooth switching of the energy between `startA` and the cutoff, so
    /// that energy and force both go continuously to zero.
    case switched(startA: Double)
    /// Plain truncation: energy jumps at the cutoff.
    case none
}

/// E(r) = 4ε[(σ/r)¹² − (σ/r)⁶] for r < cutoff.
public struct LennardJonesSettings: Equatable, Sendable {
    public var epsilonEV: Double
    public var sigmaA: Double
    public var cutoffA: Double
    public var truncation: Truncation
    /// Verlet-list skin added to the cutoff.
    public var skinA: Double

    public init(epsilonEV: Double, sigmaA: Double, cutoffA: Double, truncation: Truncation = .shift, skinA: Double = 1.0) {
        self.epsilonEV = epsilonEV
        self.sigmaA = sigmaA
        self.cutoffA = cutoffA
        self.truncation = truncation
        self.skinA = skinA
    }
}

/// E(r) = D[e^{−2α(r−r0)} − 2e^{−α(r−r0)}] for r < cutoff.
public struct MorseSettings: Equatable, Sendable {
    public var depthEV: Double
    public var alphaPerA: Double
    public var r0A: Double
    public var cutoffA: Double
    public var truncation: Truncation
    public var skinA: Double

    public init(depthEV: Double, alphaPerA: Double, r0A: Double, cutoffA: Double, truncation: Truncation = .shift, skinA: Double = 1.0) {
        self.depthEV = depthEV
        self.alphaPerA = alphaPerA
        self.r0A = r0A
        self.cutoffA = cutoffA
        self.truncation = truncation
        self.skinA = skinA
    }
}

/// A bond E = ½ k (|r_j − r_i| − r0)² between atoms `i` and `j` (0-based).
public struct HarmonicBond: Equatable, Sendable {
    public var i: Int
    public var j: Int
    public var kEVPerA2: Double
    public var r0A: Double

    public init(i: Int, j: Int, kEVPerA2: Double, r0A: Double) {
        self.i = i
        self.j = j
        self.kEVPerA2 = kEVPerA2
        self.r0A = r0A
    }
}

/// A positional restraint E = ½ k |r_atom − anchor|² (0-based atom index).
public struct HarmonicRestraint: Equatable, Sendable {
    public var atom: Int
    public var kEVPerA2: Double
    public var anchorA: SIMD3<Double>

    public init(atom: Int, kEVPerA2: Double, anchorA: SIMD3<Double>) {
        self.atom = atom
        self.kEVPerA2 = kEVPerA2
        self.anchorA = anchorA
    }
}

/// Harmonic bonds and restraints. Atom indices are checked against the
/// structure by the caller (the deck does not read the structure).
public struct HarmonicSettings: Equatable, Sendable {
    public var bonds: [HarmonicBond]
    public var restraints: [HarmonicRestraint]

    public init(bonds: [HarmonicBond] = [], restraints: [HarmonicRestraint] = []) {
        self.bonds = bonds
        self.restraints = restraints
    }

    /// Largest atom index referenced, or nil if none.
    public var maxAtomIndex: Int? {
        (bonds.flatMap { [$0.i, $0.j] } + restraints.map(\.atom)).max()
    }
}

/// Another program computes energy and forces (``Potentials/ExternalPotential``).
public struct ExternalSettings: Equatable, Sendable {
    /// Run through `/bin/sh -c` at every force evaluation.
    public var command: String
    /// The deck's directory, where the command runs (so that it finds files beside the deck).
    public var workingDirectory: String
    public var timeoutS: Double
    /// An hour: long for one evaluation of a quantum-chemistry code, short beside a lost night.
    public static let defaultTimeoutS = 3600.0

    public init(command: String, workingDirectory: String, timeoutS: Double = defaultTimeoutS) {
        self.command = command
        self.workingDirectory = workingDirectory
        self.timeoutS = timeoutS
    }
}

/// A force code connected over the i-PI socket protocol (``Potentials/SocketPotential``).
public struct IPISettings: Equatable, Sendable {
    public enum Address: Equatable, Sendable, CustomStringConvertible {
        /// `unix:NAME`: the socket `/tmp/ipi_NAME`, where i-PI clients look for it.
        case unix(name: String)
        /// `HOST:PORT`: TCP on `localhost`, a numeric IPv4 address, or `*` (every address).
        case tcp(host: String, port: Int)

        public var description: String {
            switch self {
            case .unix(let name): return "unix:\(name) (/tmp/ipi_\(name))"
            case .tcp(let host, let port): return "\(host):\(port)"
            }
        }
    }

    public var address: Address
    /// For the client to connect, and then for each answer.
    public var timeoutS: Double

    public init(address: Address, timeoutS: Double = ExternalSettings.defaultTimeoutS) {
        self.address = address
        self.timeoutS = timeoutS
    }

    /// Reads `unix:NAME` or `HOST:PORT`; nil for anything else.
    public static func address(parsing text: String) -> Address? {
        if text.hasPrefix("unix:") {
            let name = String(text.dropFirst(5))
            // sun_path holds 107 bytes and a NUL; "/tmp/ipi_" takes nine.
            guard !name.isEmpty, !name.contains("/"), !name.contains("\0"), name.utf8.count <= 98 else { return nil }
            return .unix(name: name)
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (1...65535).contains(port) else { return nil }
        let host = String(text[..<colon])
        var numeric = in_addr()
        guard host == "*" || host == "localhost" || inet_pton(AF_INET, host, &numeric) == 1 else { return nil }
        return .tcp(host: host, port: port)
    }
}

public enum ENINetPrecision: String, Equatable, Sendable {
    case float
    case double
}

public struct ENINetSettings: Equatable, Sendable {
    /// Absolute path of an existing `.safetensors` model file.
    public var modelPath: String
    public var precision: ENINetPrecision
    public var skinA: Double

    public init(modelPath: String, precision: ENINetPrecision = .float, skinA: Double = 1.0) {
        self.modelPath = modelPath
        self.precision = precision
        self.skinA = skinA
    }
}

/// The force field named by `[potential]`.
public enum PotentialSettings: Equatable, Sendable {
    case lennardJones(LennardJonesSettings)
    case morse(MorseSettings)
    case harmonic(HarmonicSettings)
    case eninet(ENINetSettings)
    case external(ExternalSettings)
    case ipi(IPISettings)
    /// Terms added together; never nested (a term is never itself a sum).
    case sum([PotentialSettings])

    /// The model files the potential reads (ENINet terms).
    public var modelPaths: [String] {
        switch self {
        case .eninet(let e): return [e.modelPath]
        case .sum(let terms): return terms.flatMap(\.modelPaths)
        default: return []
        }
    }

    /// Whether a term pulls atoms towards fixed points (harmonic restraints): the total
    /// momentum then changes, and all 3N velocity components are degrees of freedom.
    public var restrainsAtoms: Bool {
        switch self {
        case .harmonic(let h): return !h.restraints.isEmpty
        case .sum(let terms): return terms.contains(where: \.restrainsAtoms)
        default: return false
        }
    }

    /// Largest 0-based atom index the potential refers to (harmonic terms),
    /// for checking against the structure once it is read; nil if none.
    public var maxAtomIndex: Int? {
        switch self {
        case .harmonic(let h): return h.maxAtomIndex
        case .sum(let terms): return terms.compactMap(\.maxAtomIndex).max()
        default: return nil
        }
    }

    /// The deck's name for the type (`lj`, `morse`, ...).
    public var typeName: String {
        switch self {
        case .lennardJones: return "lj"
        case .morse: return "morse"
        case .harmonic: return "harmonic"
        case .eninet: return "eninet"
        case .external: return "external"
        case .ipi: return "ipi"
        case .sum: return "sum"
        }
    }
}

// MARK: - Dynamics, minimisation, output

public enum IntegratorSettings: Equatable, Sendable {
    /// Velocity Verlet, NVE.
    case verlet
    /// Langevin dynamics, BAOAB splitting, friction γ in ps⁻¹.
    case langevin(frictionPerPs: Double)
    /// Velocity Verlet with stochastic velocity rescaling (Bussi–Donadio–Parrinello), time constant τ in fs.
    case bussi(tauFs: Double)

    public var name: String {
        switch self {
        case .verlet: return "verlet"
        case .langevin: return "langevin"
        case .bussi: return "bussi"
        }
    }

    /// Langevin friction in the internal unit fs⁻¹ (nil for other integrators).
    public var frictionPerFs: Double? {
        if case .langevin(let g) = self { return g / 1000.0 }
        return nil
    }
}

public struct DynamicsSettings: Equatable, Sendable {
    public var integrator: IntegratorSettings
    public var timestepFs: Double
    public var steps: Int
    /// Thermostat target; non-nil exactly when the integrator is a thermostat.
    public var temperatureK: Double?
    /// If set, draw Maxwell–Boltzmann velocities at this temperature from the
    /// seed; if nil, take velocities from the structure file, else zero.
    public var initialTemperatureK: Double?
    public var seed: UInt64
    /// True when the deck asked for a clock seed (`seed = -1`, AMBER `ig = -1`);
    /// `seed` then holds the value drawn, which the run should log.
    public var seedFromClock: Bool
    /// Subtract the centre-of-mass velocity from the initial velocities.
    public var removeCenterOfMassMotion: Bool
    /// Constant pressure by Monte Carlo volume moves; nil for constant volume.
    public var barostat: BarostatSettings?

    public init(integrator: IntegratorSettings = .verlet, timestepFs: Double = 1.0, steps: Int = 0,
                temperatureK: Double? = nil, initialTemperatureK: Double? = nil, seed: UInt64 = 0,
                seedFromClock: Bool = false, removeCenterOfMassMotion: Bool = true, barostat: BarostatSettings? = nil) {
        self.barostat = barostat
        self.integrator = integrator
        self.timestepFs = timestepFs
        self.steps = steps
        self.temperatureK = temperatureK
        self.initialTemperatureK = initialTemperatureK
        self.seed = seed
        self.seedFromClock = seedFromClock
        self.removeCenterOfMassMotion = removeCenterOfMassMotion
    }
}

/// The Monte Carlo barostat of `[dynamics]`: `barostat = "montecarlo"`, `pressure_bar`,
/// `barostat_every`, `barostat_coupling`.
public struct BarostatSettings: Equatable, Sendable {
    /// Target pressure (bar).
    public var pressureBar: Double
    /// Steps between volume moves.
    public var every: Int
    /// Scale x, y and z separately (one per move) rather than together.
    public var anisotropic: Bool

    /// OpenMM's default interval.
    public static let defaultEvery = 25

    public init(pressureBar: Double, every: Int = defaultEvery, anisotropic: Bool = false) {
        self.pressureBar = pressureBar
        self.every = every
        self.anisotropic = anisotropic
    }
}

public struct MinimizeSettings: Equatable, Sendable {
    public var maxSteps: Int
    /// Converged when the largest atomic force magnitude is below this.
    public var fmaxEVPerA: Double

    public init(maxSteps: Int = 1000, fmaxEVPerA: Double = 0.05) {
        self.maxSteps = maxSteps
        self.fmaxEVPerA = fmaxEVPerA
    }
}

/// Output files (absolute paths; parent directories are created at run time)
/// and strides in steps (0 = off).
public struct OutputSettings: Equatable, Sendable {
    public var logPath: String?
    public var logEvery: Int
    public var trajectoryPath: String?
    public var trajectoryEvery: Int
    /// 0, or equal to `trajectoryEvery`: velocities stored in the trajectory frames.
    public var velocitiesEvery: Int
    /// 0, or equal to `trajectoryEvery`: forces stored in the trajectory frames.
    public var forcesEvery: Int
    public var restartPath: String?
    /// Stride of restart writes; 0 = only at the end of the run. A restart
    /// file is always written at the end when `restartPath` is set.
    public var restartEvery: Int
    public var finalStructurePath: String?
    public var dipoleEvery: Int
    public var dipoleModelPath: String?

    public init(logPath: String? = nil, logEvery: Int = 100, trajectoryPath: String? = nil, trajectoryEvery: Int = 0,
                velocitiesEvery: Int = 0, forcesEvery: Int = 0, restartPath: String? = nil, restartEvery: Int = 0,
                finalStructurePath: String? = nil, dipoleEvery: Int = 0, dipoleModelPath: String? = nil) {
        self.logPath = logPath
        self.logEvery = logEvery
        self.trajectoryPath = trajectoryPath
        self.trajectoryEvery = trajectoryEvery
        self.velocitiesEvery = velocitiesEvery
        self.forcesEvery = forcesEvery
        self.restartPath = restartPath
        self.restartEvery = restartEvery
        self.finalStructurePath = finalStructurePath
        self.dipoleEvery = dipoleEvery
        self.dipoleModelPath = dipoleModelPath
    }

    /// Every output file named, for creating parent directories before a run.
    public var allPaths: [String] { namedPaths.map(\.path) }

    /// Every output file named, with its deck key.
    public var namedPaths: [(key: String, path: String)] {
        [("output.log", logPath), ("output.trajectory", trajectoryPath), ("output.restart", restartPath),
         ("output.final_structure", finalStructurePath)].compactMap { key, path in path.map { (key, $0) } }
    }

    /// Checks that every output file can be written, before a run writes any: not a directory,
    /// its directory writable (the restart, the final structure and a new log are written under
    /// a temporary name there and renamed), and, for the trajectory and the log, which a
    /// continuation extends in place, the file itself when it exists. A restart or final
    /// structure is written at the end; without this, a 20,000-step run found out then, with
    /// nothing to continue from, and an unwritable log left an empty trajectory behind.
    /// - Throws: ``DeckError`` naming the key and the path.
    public func checkWritable() throws {
        let files = FileManager.default
        for (key, path) in namedPaths {
            let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            var isDirectory: ObjCBool = false
            let exists = files.fileExists(atPath: resolved, isDirectory: &isDirectory)
            let parent = (resolved as NSString).deletingLastPathComponent
            let directory = parent.isEmpty ? "." : parent
            let problem: String?
            if exists && isDirectory.boolValue {
                problem = "is a directory"
            } else if !files.isWritableFile(atPath: directory) {
                problem = "cannot be written: no permission to write in \(directory)"
            } else if exists && ["output.trajectory", "output.log"].contains(key) && !files.isWritableFile(atPath: resolved) {
                problem = "cannot be written (no permission)"
            } else {
                problem = nil
            }
            if let problem { throw DeckError(file: path, line: nil, message: "\(key) \(problem)") }
        }
    }

    /// Creates the missing parent directories of every output file (the deck
    /// only checks that they can exist; the run creates them).
    /// - Throws: ``DeckError`` naming the directory that could not be created.
    public func createParentDirectories() throws {
        for path in allPaths {
            let parent = (path as NSString).deletingLastPathComponent
            guard !parent.isEmpty else { continue }
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw DeckError(file: path, line: nil, message: "cannot create output directory \(parent): \(error.localizedDescription)")
            }
        }
    }
}
