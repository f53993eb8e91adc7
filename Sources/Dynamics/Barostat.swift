import Geometry
import Potentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Constant pressure by Monte Carlo volume moves (Chow and Ferguson 1995; Åqvist, Wennerström,
/// Nervall, Bjelic and Brandsdal 2004: OpenMM's `MonteCarloBarostat`, AMBER's `barostat = 2`),
/// around a thermostatted integrator.
///
/// Every `interval` steps the cell and every position are scaled to a volume V′ = V e^ε, ε
/// uniform in [−δ, δ] (a random walk in ln V, Frenkel and Smit's algorithm 11): isotropically,
/// or, with ``Coupling/anisotropic``, along one Cartesian axis drawn at random (OpenMM's
/// `MonteCarloAnisotropicBarostat`, AMBER's `ntp = 2`), so that a crystal's cell finds its
/// own shape. The move is accepted with probability min(1, exp(−w/k_BT)),
/// w = ΔU + P(V′ − V) − (N + 1) k_BT ln(V′/V), which samples the isothermal–isobaric
/// distribution of positions and volume, V^N exp(−(U + PV)/k_BT); the extra 1 is the Jacobian
/// of the walk in ln V. Atoms are scaled one by one (no molecules are known to a learned
/// potential), so N is the atom count. Velocities are left alone: the thermostat keeps their
/// distribution canonical. δ starts at 0.01 (1 % of the volume) and is adapted as OpenMM adapts
/// its step, every ten moves, towards an acceptance between 25 and 75 %, up to 0.3.
///
/// OpenMM draws ΔV = V′ − V uniformly instead, and caps δ at 0.3 V: a cap that follows the
/// volume makes the proposals depend on the state, and an ideal gas of 20 atoms then sampled
/// a mean volume 0.9 % below the exact one (7 standard errors). A walk in ln V needs no cap that
/// moves, and never proposes a negative volume.
///
/// The energy accepted moves add to the potential energy is counted as heat taken from the
/// bath, so that ``thermostatHeat`` keeps the logged conserved energy continuous through them.
public struct MonteCarloBarostat: Integrator {
    /// The integrator that moves the atoms between volume moves; its thermostat sets the
    /// temperature of the acceptance test.
    public private(set) var thermostat: any Integrator
    /// Target pressure (bar).
    public let pressure: Double
    /// Temperature of the acceptance test (K): the thermostat's target.
    public let temperature: Double
    /// Steps between volume moves.
    public let interval: Int
    /// How a move deforms the cell.
    public enum Coupling: String, Sendable {
        /// All three Cartesian axes by the same factor: the cell keeps its shape.
        case isotropic
        /// One Cartesian axis, drawn at random, per move: the lengths along x, y and z relax
        /// separately, each to the target pressure (the cell's angles change with them; shear
        /// stays). The cell must be in the standard orientation, a along x and b in the xy
        /// plane, as OpenMM and AMBER require: scaling Cartesian axes of a rotated cell samples
        /// something that depends on the rotation (a stretched argon crystal turned 45° about z
        /// kept its stretch). A fluid's shape wanders freely, so this is for solids.
        case anisotropic
    }
    public let coupling: Coupling
    public private(set) var random: RandomStream
    /// δ: the largest change of ln V a move proposes.
    public private(set) var maximumLogVolumeChange = 0.01
    /// Moves proposed and accepted since δ was last adapted.
    private var recentAttempts = 0, recentAcceptances = 0
    /// Moves proposed and accepted since the run began.
    public private(set) var attempts = 0, acceptances = 0
    /// Σ ΔU of the accepted moves (eV).
    private var work = 0.0

    public var name: String { thermostat.name }
    public var timestep: Double { thermostat.timestep }
    public var thermostatHeat: Double { thermostat.thermostatHeat - work }
    public func degreesOfFreedom(atomCount: Int) -> Int { thermostat.degreesOfFreedom(atomCount: atomCount) }

    /// Moves proposed between adaptations of δ, and the acceptance band δ is steered into.
    static let adaptationWindow = 10
    static let acceptanceBand = 0.25...0.75
    /// The largest δ: a move then changes the volume by at most 35 %.
    static let largestLogVolumeChange = 0.3
    /// A volume (Å³) no physical cell reaches: 1 m³. Past it the cell has run away.
    static let largestVolume = 1e30

    /// Whether `cell` has a along x and b in the xy plane, to 1e-6 of its edges' lengths.
    public static func isInStandardOrientation(_ cell: Cell) -> Bool {
        let a = cell.a, b = cell.b, lengths = cell.lengths
        return abs(a.y) <= 1e-6 * lengths.x && abs(a.z) <= 1e-6 * lengths.x && abs(b.z) <= 1e-6 * lengths.y
    }

    /// - Parameters:
    ///   - thermostat: a thermostatted integrator (``LangevinBAOAB``, ``BussiThermostat``).
    ///   - pressure: bar (any finite value; a negative pressure is a tension).
    ///   - temperature: K, the thermostat's target.
    ///   - interval: steps between volume moves (≥ 1).
    ///   - seed: seeds the barostat's own random stream, kept apart from the thermostat's so
    ///     that adding a barostat leaves the thermostat's noise as it was.
    public init(thermostat: any Integrator, pressure: Double, temperature: Double, interval: Int, seed: UInt64,
                coupling: Coupling = .isotropic) throws {
        guard thermostat is LangevinBAOAB || thermostat is BussiThermostat else {
            throw DynamicsError.invalidParameter("a barostat needs a thermostat (langevin or bussi), not \(thermostat.name)")
        }
        guard pressure.isFinite else { throw DynamicsError.invalidParameter("pressure \(pressure) bar must be finite") }
        guard temperature >= 0, temperature.isFinite else { throw DynamicsError.invalidParameter("temperature \(temperature) K must be ≥ 0") }
        guard interval >= 1 else { throw DynamicsError.invalidParameter("barostat interval \(interval) steps must be ≥ 1") }
        self.thermostat = thermostat
        self.pressure = pressure
        self.temperature = temperature
        self.interval = interval
        self.coupling = coupling
        self.random = RandomStream(seed: seed ^ 0xBA20_57A7_0C0F_FEE5)
    }

    public mutating func step(_ state: inout MDState, forces: inout ForceResult, potential: any Potential) throws {
        try thermostat.step(&state, forces: &forces, potential: potential)
        if state.step % interval == 0 { try attemptVolumeMove(&state, forces: &forces, potential: potential) }
    }

    /// One Metropolis volume move. A rejected move leaves `state`, `forces` and the potential's
    /// neighbour lists as they were, so the run goes on bit for bit as if it had not been tried.
    public mutating func attemptVolumeMove(_ state: inout MDState, forces: inout ForceResult, potential: any Potential) throws {
        guard let cell = state.cell, cell.pbc == .all else {
            throw DynamicsError.invalidState("the barostat needs a cell periodic along a, b and c")
        }
        if coupling == .anisotropic, !Self.isInStandardOrientation(cell) {
            throw DynamicsError.invalidState("anisotropic pressure coupling needs the cell in the standard orientation (a along x, b in the xy plane); a = \(cell.a), b = \(cell.b)")
        }
        let volume = cell.volume
        let logChange = maximumLogVolumeChange * (2 * random.uniform() - 1)
        let newVolume = volume * exp(logChange)
        let scale: Vec3
        switch coupling {
        case .isotropic: scale = Vec3(repeating: exp(logChange / 3))
        case .anisotropic:
            var factors = Vec3.one
            factors[min(2, Int(3 * random.uniform()))] = exp(logChange)
            scale = factors
        }
        // At zero or negative pressure a fluid has no equilibrium volume: said here, before the
        // neighbour search fails on a cell whose widths overflow.
        guard newVolume < Self.largestVolume else {
            throw DynamicsError.stepFailed(step: state.step, reason: "the barostat's cell has grown to \(volume) A^3: at \(pressure) bar a fluid expands without bound")
        }
        var trial = state
        // 1 + (s − 1) is s exactly for the factors a move draws (0.74 to 1.35).
        let strain = Mat3(Vec3(scale.x - 1, 0, 0), Vec3(0, scale.y - 1, 0), Vec3(0, 0, scale.z - 1))
        trial.cell = try cell.strained(by: strain)
        trial.positions.withUnsafeMutableBufferPointer { x in
            for i in 0..<x.count { x[i] *= scale }
        }
        let anchors = potential.listAnchors
        func restoreLists() {
            if (try? potential.restoreListAnchors(anchors, atomCount: state.count, cell: state.cell)) != true {
                // Lists that cannot be given back are rebuilt from the current positions at the next step.
                potential.invalidateCaches()
            }
        }
        let trialForces: ForceResult
        do {
            trialForces = try potential.compute(trial.configuration)
        } catch let stop as EvaluationStopped {
            restoreLists()
            throw stop
        } catch {
            restoreLists()
            throw PotentialError("the barostat's trial volume \(newVolume) A^3 (from \(volume)): \(error)")
        }
        let kT = Units.boltzmann * temperature
        let energyChange = trialForces.energy - forces.energy
        let w = energyChange + pressure / Units.barPerEVPerCubicAngstrom * (newVolume - volume)
            - Double(state.count + 1) * kT * logChange
        // Coinciding atoms (a non-finite trial) are a move to refuse, not a failed step.
        if energyChange.isFinite, trialForces.forces.allSatisfy({ $0.isFinite }),
           w <= 0 || random.uniform() < exp(-w / kT) {
            state = trial
            forces = trialForces
            work += energyChange
            acceptances += 1
            recentAcceptances += 1
        } else {
            restoreLists()
        }
        attempts += 1
        recentAttempts += 1
        if recentAttempts >= Self.adaptationWindow {
            let rate = Double(recentAcceptances) / Double(recentAttempts)
            if rate < Self.acceptanceBand.lowerBound {
                maximumLogVolumeChange /= 1.1
            } else if rate > Self.acceptanceBand.upperBound {
                maximumLogVolumeChange = min(maximumLogVolumeChange * 1.1, Self.largestLogVolumeChange)
            }
            recentAttempts = 0
            recentAcceptances = 0
        }
    }

    public func exportState() -> [String: String] {
        var out = thermostat.exportState()
        out.merge(random.exported(prefix: "barostat_rng")) { _, new in new }
        out["barostat"] = "montecarlo"
        out["barostat_work"] = ExactText.encode(work)
        out["barostat_max_log_volume_change"] = ExactText.encode(maximumLogVolumeChange)
        out["barostat_counts"] = [recentAttempts, recentAcceptances, attempts, acceptances].map(String.init).joined(separator: " ")
        return out
    }

    public mutating func restoreState(_ saved: [String: String]) throws {
        guard saved["barostat"] == "montecarlo" else {
            throw DynamicsError.badCheckpoint("it was written by a run without a barostat; to go on at constant pressure from it, write its structure with `eninet-md convert` and start a new run from that")
        }
        try thermostat.restoreState(saved)
        random = try RandomStream(restoring: saved, prefix: "barostat_rng")
        work = try ExactText.decode(saved, "barostat_work")
        maximumLogVolumeChange = try ExactText.decode(saved, "barostat_max_log_volume_change")
        guard work.isFinite, maximumLogVolumeChange > 0, maximumLogVolumeChange <= Self.largestLogVolumeChange else {
            throw DynamicsError.badCheckpoint("barostat_work \(work) eV and barostat_max_log_volume_change \(maximumLogVolumeChange) must be finite, the second in (0, \(Self.largestLogVolumeChange)]")
        }
        let counts = (saved["barostat_counts"] ?? "").split(separator: " ").compactMap { Int($0) }
        guard counts.count == 4, counts.allSatisfy({ $0 >= 0 }), counts[1] <= counts[0], counts[3] <= counts[2] else {
            throw DynamicsError.badCheckpoint("barostat_counts is '\(saved["barostat_counts"] ?? "missing")', not four counts (moves tried and accepted, recently and in all)")
        }
        (recentAttempts, recentAcceptances, attempts, acceptances) = (counts[0], counts[1], counts[2], counts[3])
    }
}
