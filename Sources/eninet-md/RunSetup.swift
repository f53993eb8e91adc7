import Foundation
import Geometry
import Potentials
import Dynamics
import Trajectory
import Deck

/// The file `path` names, symbolic links followed: two paths name one file when these agree
/// (the commands refuse an output that would overwrite one of their inputs).
func canonicalPath(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }

/// An error the CLI reports about a user's input files, in one line.
struct InputError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }

    /// What a potential refuses in the first forces or a minimisation (coinciding atoms, an
    /// element the model does not know, a cell too small) belongs to the structure at `path`;
    /// errors already named (`InputError`) and an external program's or an i-PI client's
    /// failure pass unchanged.
    static func blaming(_ path: String, for error: Error) -> Error {
        switch error {
        case is InputError, is ExternalProgramError, is IPIError: return error
        default: return InputError("\(path): \(error)")
        }
    }
}

/// Turns validated deck settings into the objects a run needs: the structure, the
/// potential, the integrator and the initial state. The deck describes; this builds.
enum RunSetup {
    /// Reads the deck's structure (first frame) and builds the requested supercell.
    static func structure(_ settings: DeckSettings) throws -> Structure {
        let path = settings.system.structurePath
        let frames = try StructureFile.read(path: path, frames: 0..<2)
        guard var structure = frames.first else { throw InputError("\(path): no frames") }
        // ASE's read takes a file's last frame; say which one this run takes.
        if frames.count > 1 { printError("warning: \(path) holds more than one frame; the first is the starting structure") }
        guard structure.count > 0 else { throw InputError("\(settings.system.structurePath): the structure has no atoms") }
        let r = settings.system.replicate
        if r != SIMD3(1, 1, 1) {
            structure = try replicate(structure, r, path: settings.system.structurePath)
        }
        if let maxIndex = settings.potential.maxAtomIndex, maxIndex >= structure.count {
            throw InputError("\(settings.deckPath): potential refers to atom \(maxIndex) (0-based) but \(settings.system.structurePath) has \(structure.count) atoms")
        }
        return structure
    }

    /// How many frames of the trajectory `reader` reads a run restarted at `restartStep` keeps, and
    /// the step of the last: those up to that step (later ones belong to the abandoned
    /// continuation). Checked before
    /// anything is cut: the atoms and the cell must be the run's, and the frames `stride` steps
    /// apart as the deck writes them. Counting by the deck's stride alone cut away frames
    /// written at another stride, and a trajectory of other atoms was cut before its first
    /// frame was refused.
    static func framesToKeep(of reader: AmberTrajectoryReader, atomCount: Int, periodic: Bool,
                             restartStep: Int, stride: Int, timestepFs: Double) throws -> (count: Int, lastStep: Int?) {
        let spacingFs = Double(stride) * timestepFs
        let path = reader.path
        guard reader.atomCount == atomCount else {
            throw InputError("\(path): the trajectory has \(reader.atomCount) atoms, this run \(atomCount); give another output.trajectory")
        }
        guard reader.hasCell == periodic else {
            throw InputError("\(path): the trajectory has \(reader.hasCell ? "a" : "no") cell, this run \(periodic ? "has one" : "has none"); give another output.trajectory")
        }
        let times = try reader.times()
        guard let t0 = times.first else { return (0, nil) }
        // Frame k lies at t₀ + k·spacing, and the first at step s₀ = t₀ / timestep, a multiple of
        // the stride: the frames up to the restart step are counted in whole steps. Times would
        // not do late in a long run, where single precision keeps them to ±1 fs at 10⁷ fs. A last
        // frame off that grid (a run stopped by a signal, or ended between strides, writes its
        // last state) is not counted: the continuation writes the grid's frames on.
        let firstStride = Int((t0 / spacingFs).rounded())
        guard abs(t0 - Double(firstStride) * spacingFs) <= 0.01 * spacingFs + 2 * abs(t0) * 0x1p-24,
              restartStep >= firstStride * stride else {
            throw InputError("\(path): its first frame, at \(t0) fs, is not on this run's stride of \(spacingFs) fs before the restart's step \(restartStep) (output.trajectory_every); keep the stride or give another output.trajectory")
        }
        let reached = restartStep / stride - firstStride + 1
        // The spacing first: with another stride than the trajectory's, the count below came out
        // short and the message gave the frames' end at the new spacing (1000 fs for 2000). A
        // short trajectory's last frame may be off the grid (a run stopped by a signal).
        let onGrid = times.count >= reached ? reached : times.count - 1
        // Stored in single precision, so times agree to a part in 10⁷ of themselves (and are
        // printed as the Float they are).
        for k in 0..<onGrid where abs(times[k] - (t0 + Double(k) * spacingFs)) > 0.01 * spacingFs + 2 * abs(times[k]) * 0x1p-24 {
            throw InputError("\(path): its frames are not \(spacingFs) fs apart as this run writes them (output.trajectory_every; frame \(k) is at \(Float(times[k])) fs); keep the stride or give another output.trajectory")
        }
        // Frames missing before the restart's step (a trajectory copied back from an earlier
        // point of the run): the continuation appended after the gap, and analyses then refused
        // the file as unevenly spaced.
        guard times.count >= reached else {
            throw InputError("\(path): its frames end at \(Float(times[times.count - 1])) fs, but the restart is at step \(restartStep) (\(Double(restartStep) * timestepFs) fs): "
                + "the frames between are missing; continue with the trajectory written together with this restart, or give another output.trajectory")
        }
        return (reached, reached > 0 ? (firstStride + reached - 1) * stride : nil)
    }

    /// The supercell of `structure` repeated `counts` times along the cell vectors.
    static func replicate(_ structure: Structure, _ counts: SIMD3<Int>, path: String) throws -> Structure {
        guard let cell = structure.cell else {
            throw InputError("\(path): system.replicate needs a cell, and this structure has none")
        }
        // Counted before anything is built: [99999999999, 1, 1] filled 16 GB and was killed.
        let limit = 50_000_000
        var total = structure.count
        for n in [counts.x, counts.y, counts.z] {
            let (product, overflow) = total.multipliedReportingOverflow(by: n)
            guard !overflow, product <= limit else {
                throw InputError("\(path): system.replicate [\(counts.x), \(counts.y), \(counts.z)] of \(structure.count) atoms makes more than \(limit) atoms")
            }
            total = product
        }
        var out = structure
        out.positions = []
        out.symbols = []
        out.atomicNumbers = []
        out.velocities = structure.velocities.map { _ in [] }
        out.masses = structure.masses.map { _ in [] }
        out.forces = nil
        out.info = [:]
        for a in 0..<counts.x { for b in 0..<counts.y { for c in 0..<counts.z {
            let shift = cell.shiftVector(SIMD3<Int32>(Int32(a), Int32(b), Int32(c)))
            out.positions += structure.positions.map { $0 + shift }
            out.symbols += structure.symbols
            out.atomicNumbers += structure.atomicNumbers
            if let v = structure.velocities { out.velocities? += v }
            if let m = structure.masses { out.masses? += m }
        } } }
        let m = cell.matrix
        out.cell = try Cell(matrix: Mat3(Double(counts.x) * m.rows.0, Double(counts.y) * m.rows.1, Double(counts.z) * m.rows.2),
                            pbc: cell.pbc)
        return out
    }

    static func pairCutoff(_ truncation: Truncation) -> PairCutoff {
        switch truncation {
        case .shift: return .shifted
        case .none: return .truncated
        case .switched(let start): return .switched(onset: start)
        }
    }

    static func socketAddress(_ address: IPISettings.Address) -> SocketAddress {
        switch address {
        case .unix(let name): return .unix(name: name)
        case .tcp(let host, let port): return .tcp(host: host, port: port)
        }
    }

    /// The potential the deck asks for. Harmonic indices were checked against the atom count
    /// by `structure(_:)`. `stopRequested` is polled by potentials whose evaluations can
    /// take minutes (an external program), so that a stop does not wait for them.
    static func potential(_ settings: PotentialSettings,
                          stopRequested: @escaping @Sendable () -> Bool = { false }) throws -> any Potential {
        switch settings {
        case .lennardJones(let lj):
            return try LennardJones(sigma: lj.sigmaA, epsilon: lj.epsilonEV, cutoff: lj.cutoffA,
                                    scheme: pairCutoff(lj.truncation), skin: lj.skinA)
        case .morse(let m):
            return try Morse(depth: m.depthEV, alpha: m.alphaPerA, equilibriumDistance: m.r0A, cutoff: m.cutoffA,
                             scheme: pairCutoff(m.truncation), skin: m.skinA)
        case .harmonic(let h):
            var terms: [any Potential] = []
            if !h.bonds.isEmpty {
                terms.append(try HarmonicBonds(bonds: h.bonds.map {
                    HarmonicBonds.Bond($0.i, $0.j, springConstant: $0.kEVPerA2, restLength: $0.r0A)
                }))
            }
            if !h.restraints.isEmpty {
                terms.append(try HarmonicRestraint(tethers: h.restraints.map {
                    HarmonicRestraint.Tether(atom: $0.atom, anchor: $0.anchorA, springConstant: $0.kEVPerA2)
                }))
            }
            return terms.count == 1 ? terms[0] : PotentialSum(terms)
        case .eninet(let e):
            return try eninetPotential(e)
        case .external(let x):
            return try ExternalPotential(command: x.command, workingDirectory: x.workingDirectory, timeout: x.timeoutS,
                                         stopRequested: stopRequested)
        case .ipi(let i):
            return try SocketPotential(address: socketAddress(i.address), timeout: i.timeoutS, stopRequested: stopRequested)
        case .sum(let terms):
            return PotentialSum(try terms.map { try potential($0, stopRequested: stopRequested) })
        }
    }

    /// 3N where restraints break the conservation of total momentum, nil otherwise (the
    /// integrator's own count: 3N − 3 for Verlet and Bussi). With eight tethered atoms, Bussi's
    /// 3N − 3 = 21 held the kinetic energy at 21/24 of its canonical mean while the log read the
    /// target temperature.
    static func restrainedDegreesOfFreedom(_ potential: PotentialSettings, atomCount: Int) -> Int? {
        potential.restrainsAtoms ? 3 * atomCount : nil
    }

    /// `degreesOfFreedom`: the count the thermostat aims at, when not the integrator's own.
    static func integrator(_ d: DynamicsSettings, degreesOfFreedom: Int?) throws -> any Integrator {
        let thermostat = try thermostat(d, degreesOfFreedom: degreesOfFreedom)
        guard let b = d.barostat else { return thermostat }
        return try MonteCarloBarostat(thermostat: thermostat, pressure: b.pressureBar, temperature: d.temperatureK ?? 0,
                                      interval: b.every, seed: d.seed, coupling: b.anisotropic ? .anisotropic : .isotropic)
    }

    private static func thermostat(_ d: DynamicsSettings, degreesOfFreedom: Int?) throws -> any Integrator {
        switch d.integrator {
        case .verlet:
            return try VelocityVerlet(timestep: d.timestepFs)
        case .langevin(let frictionPerPs):
            // LangevinBAOAB takes γ in 1/ps, as the deck gives it.
            return try LangevinBAOAB(timestep: d.timestepFs, temperature: d.temperatureK ?? 0,
                                     friction: frictionPerPs, seed: d.seed)
        case .bussi(let tau):
            return try BussiThermostat(timestep: d.timestepFs, temperature: d.temperatureK ?? 0,
                                       relaxationTime: tau, seed: d.seed, degreesOfFreedom: degreesOfFreedom)
        }
    }

    /// Masses from the structure file when it has them, otherwise the standard masses.
    static func masses(_ structure: Structure) throws -> [Double] {
        if let m = structure.masses { return m }
        return try structure.atomicNumbers.enumerated().map { i, z in
            guard let m = Elements.mass(of: z), m > 0 else {
                throw InputError("atom \(i) (\(structure.symbols[i])) has no standard mass")
            }
            return m
        }
    }

    /// The starting state of a fresh run: Maxwell–Boltzmann velocities from the seed when the
    /// deck sets an initial temperature, else velocities from the structure file, else zero.
    /// The drawn velocities are scaled to the temperature over the `degreesOfFreedom` the log
    /// counts (the integrator's): with 3N − 3 under Langevin's 3N, step 0 of a 300 K ethanol
    /// run logged 266.7 K.
    static func initialState(_ structure: Structure, _ d: DynamicsSettings, degreesOfFreedom: Int) throws -> MDState {
        let masses = try masses(structure)
        var velocities = structure.velocities
        if let t0 = d.initialTemperatureK {
            // A stream of its own, so that the thermostat's stream starts from the bare seed.
            var random = RandomStream(seed: d.seed ^ 0x5EED_0F_7E10C171)
            velocities = InitialVelocities.maxwellBoltzmann(masses: masses, temperature: t0, random: &random,
                                                            removeDrift: d.removeCenterOfMassMotion,
                                                            degreesOfFreedom: degreesOfFreedom)
        } else if d.removeCenterOfMassMotion, var v = velocities {
            let totalMass = masses.reduce(0, +)
            var momentum = Vec3.zero
            for i in v.indices { momentum += masses[i] * v[i] }
            let drift = momentum / totalMass
            for i in v.indices { v[i] -= drift }
            velocities = v
        }
        return try MDState(positions: structure.positions, velocities: velocities, masses: masses,
                           cell: structure.cell, atomicNumbers: structure.atomicNumbers)
    }

    /// The state saved in a restart file, with masses and elements from the deck's structure.
    static func restoredCheckpoint(_ restart: AmberRestart, structure: Structure, path: String) throws -> Checkpoint {
        guard restart.positions.count == structure.count else {
            throw InputError("\(path): restart has \(restart.positions.count) atoms but the deck's structure has \(structure.count)")
        }
        guard let step = restart.step else {
            throw InputError("\(path): restart has no step counter (not written by eninet-md); an exact continuation needs one")
        }
        // Each of these went on with exit status 0: NaN times through every output, a cold
        // restart at zero velocity, or a molecule continued as a crystal (or the reverse).
        guard restart.time.isFinite else { throw InputError("\(path): restart time is \(restart.time) fs") }
        guard restart.velocities != nil else {
            throw InputError("\(path): restart holds no velocities ('velocities' and 'eninetmd_velocities' are absent); every restart a run writes has them")
        }
        let restartPeriodicity = restart.cell?.pbc ?? .none, runPeriodicity = structure.cell?.pbc ?? .none
        guard restartPeriodicity == runPeriodicity else {
            throw InputError("\(path): restart is periodic along \"\(restartPeriodicity)\" (x y z), the deck's structure along \"\(runPeriodicity)\"")
        }
        let state = try MDState(positions: restart.positions, velocities: restart.velocities, masses: try masses(structure),
                                cell: restart.cell, atomicNumbers: structure.atomicNumbers, time: restart.time, step: step)
        return Checkpoint(state: state, integrator: restart.state, listAnchors: restart.listAnchors)
    }
}
