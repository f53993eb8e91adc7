import Geometry
import Potentials
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One integration scheme: a small value with one `step` on a value-type state.
///
/// `forces` holds the forces of `state.positions` on entry and those of the new positions on
/// exit, so each step costs one force evaluation. Everything an integrator carries from step
/// to step (random stream, accumulated thermostat heat) is in `exportState()`.
public protocol Integrator {
    /// "verlet", "langevin", "bussi".
    var name: String { get }
    /// Time step (fs).
    var timestep: Double { get }
    /// Energy (eV) the thermostat has taken out of the system since the run began (negative
    /// when it put energy in). Total energy + heat is the conserved quantity.
    var thermostatHeat: Double { get }
    /// Degrees of freedom of the kinetic temperature for `atomCount` atoms.
    func degreesOfFreedom(atomCount: Int) -> Int
    /// Advances `state` by one time step.
    mutating func step(_ state: inout MDState, forces: inout ForceResult, potential: any Potential) throws
    /// The integrator's evolving state (exact text; parameters are not included).
    func exportState() -> [String: String]
    /// Restores what `exportState()` wrote.
    mutating func restoreState(_ saved: [String: String]) throws
}

/// Kicks: v += h · F/m (h in fs).
@inline(__always)
func kick(_ state: inout MDState, _ forces: [Vec3], _ h: Double) {
    let scale = h * Units.accelerationPerForceOverMass
    state.velocities.withUnsafeMutableBufferPointer { v in
        forces.withUnsafeBufferPointer { f in
            state.masses.withUnsafeBufferPointer { m in
                for i in 0..<v.count { v[i] += (scale / m[i]) * f[i] }
            }
        }
    }
}

/// Drifts: x += h · v.
@inline(__always)
func drift(_ state: inout MDState, _ h: Double) {
    state.positions.withUnsafeMutableBufferPointer { x in
        state.velocities.withUnsafeBufferPointer { v in
            for i in 0..<x.count { x[i] += h * v[i] }
        }
    }
}

/// Removing the centre-of-mass motion leaves 3N − 3 degrees of freedom when there is more than one atom.
func momentumConservingDegreesOfFreedom(_ n: Int) -> Int { n > 1 ? 3 * n - 3 : 3 * n }

/// Velocity Verlet (NVE): half kick, drift, forces, half kick.
public struct VelocityVerlet: Integrator {
    public let timestep: Double
    public var name: String { "verlet" }
    public var thermostatHeat: Double { 0 }

    /// - Parameter timestep: fs.
    public init(timestep: Double) throws {
        guard timestep > 0, timestep.isFinite else { throw DynamicsError.invalidParameter("timestep \(timestep) fs must be positive") }
        self.timestep = timestep
    }

    public func degreesOfFreedom(atomCount: Int) -> Int { momentumConservingDegreesOfFreedom(atomCount) }

    public mutating func step(_ state: inout MDState, forces: inout ForceResult, potential: any Potential) throws {
        kick(&state, forces.forces, 0.5 * timestep)
        drift(&state, timestep)
        forces = try potential.compute(state.configuration)
        kick(&state, forces.forces, 0.5 * timestep)
        state.step += 1
        state.time += timestep
    }

    public func exportState() -> [String: String] { ["integrator": name] }
    public mutating func restoreState(_ saved: [String: String]) throws {}
}

/// Langevin dynamics in the BAOAB splitting (Leimkuhler and Matthews 2013): half kick, half
/// drift, exact Ornstein–Uhlenbeck velocity update, half drift, forces, half kick.
///
/// The O step v ← c v + √((1 − c²) k_B T/m) ξ with c = exp(−γ Δt) is exact for any γΔt;
/// configurational averages of a harmonic system are exact at any stable time step.
public struct LangevinBAOAB: Integrator {
    public let timestep: Double
    /// Target temperature (K).
    public let temperature: Double
    /// Friction γ (1/ps).
    public let friction: Double
    public private(set) var random: RandomStream
    public private(set) var thermostatHeat: Double = 0
    public var name: String { "langevin" }

    /// - Parameters:
    ///   - timestep: fs.
    ///   - temperature: K.
    ///   - friction: γ in 1/ps (1/ps ≈ a velocity memory of 1 ps).
    ///   - seed: seeds the run's random stream.
    public init(timestep: Double, temperature: Double, friction: Double, seed: UInt64) throws {
        try self.init(timestep: timestep, temperature: temperature, friction: friction, random: RandomStream(seed: seed))
    }

    /// Continues an existing stream (e.g. the one that drew the initial velocities), so that a
    /// run uses one generator throughout.
    public init(timestep: Double, temperature: Double, friction: Double, random: RandomStream) throws {
        guard timestep > 0, timestep.isFinite else { throw DynamicsError.invalidParameter("timestep \(timestep) fs must be positive") }
        guard temperature >= 0, temperature.isFinite else { throw DynamicsError.invalidParameter("temperature \(temperature) K must be ≥ 0") }
        guard friction >= 0, friction.isFinite else { throw DynamicsError.invalidParameter("friction \(friction) 1/ps must be ≥ 0") }
        self.timestep = timestep
        self.temperature = temperature
        self.friction = friction
        self.random = random
    }

    /// The random forces break momentum conservation: all 3N degrees of freedom are thermostatted.
    public func degreesOfFreedom(atomCount: Int) -> Int { 3 * atomCount }

    public mutating func step(_ state: inout MDState, forces: inout ForceResult, potential: any Potential) throws {
        let dt = timestep
        kick(&state, forces.forces, 0.5 * dt)
        drift(&state, 0.5 * dt)
        let c = exp(-friction / Units.femtosecondsPerPicosecond * dt)
        let noise = ((1 - c * c) * Units.boltzmann * temperature * Units.accelerationPerForceOverMass).squareRoot()
        let before = state.kineticEnergy
        for i in 0..<state.count {
            let sigma = noise / state.masses[i].squareRoot()
            let xi = Vec3(random.normal(), random.normal(), random.normal())
            state.velocities[i] = c * state.velocities[i] + sigma * xi
        }
        thermostatHeat += before - state.kineticEnergy
        drift(&state, 0.5 * dt)
        forces = try potential.compute(state.configuration)
        kick(&state, forces.forces, 0.5 * dt)
        state.step += 1
        state.time += dt
    }

    public func exportState() -> [String: String] {
        ThermostatState.export(integrator: name, random: random, heat: thermostatHeat)
    }

    public mutating func restoreState(_ saved: [String: String]) throws {
        (random, thermostatHeat) = try ThermostatState.restore(saved, integrator: name)
    }
}

/// Stochastic velocity rescaling (Bussi, Donadio and Parrinello, J. Chem. Phys. 126, 014101,
/// 2007) around velocity Verlet: a half-step thermostat, a Verlet step, a half-step thermostat.
///
/// Each thermostat step draws the new kinetic energy exactly from the Ornstein–Uhlenbeck
/// process of the paper: with c = exp(−(Δt/2)/τ), K̄ = N_f k_B T/2,
/// K′ = cK + (1−c)K̄(R₁² + S)/N_f + 2R₁√(c(1−c)K K̄/N_f), S ~ χ²(N_f − 1) drawn as 2·Gamma((N_f−1)/2),
/// and scales every velocity by α = ±√(K′/K) (sign of R₁ + √(c N_f K/((1−c)K̄))).
public struct BussiThermostat: Integrator {
    public let timestep: Double
    public let temperature: Double
    /// Relaxation time τ (fs).
    public let relaxationTime: Double
    /// N_f; nil means 3N − 3 (total momentum is conserved and zero).
    public let fixedDegreesOfFreedom: Int?
    public private(set) var random: RandomStream
    public private(set) var thermostatHeat: Double = 0
    public var name: String { "bussi" }

    /// - Parameters:
    ///   - timestep: fs.
    ///   - temperature: K.
    ///   - relaxationTime: τ in fs (0 rescales to a fresh canonical draw every half step).
    ///   - degreesOfFreedom: N_f; default 3N − 3. Use 3N when external forces (restraints)
    ///     break momentum conservation.
    public init(timestep: Double, temperature: Double, relaxationTime: Double, seed: UInt64,
                degreesOfFreedom: Int? = nil) throws {
        try self.init(timestep: timestep, temperature: temperature, relaxationTime: relaxationTime,
                      random: RandomStream(seed: seed), degreesOfFreedom: degreesOfFreedom)
    }

    /// Continues an existing stream (e.g. the one that drew the initial velocities).
    public init(timestep: Double, temperature: Double, relaxationTime: Double, random: RandomStream,
                degreesOfFreedom: Int? = nil) throws {
        guard timestep > 0, timestep.isFinite else { throw DynamicsError.invalidParameter("timestep \(timestep) fs must be positive") }
        guard temperature >= 0, temperature.isFinite else { throw DynamicsError.invalidParameter("temperature \(temperature) K must be ≥ 0") }
        guard relaxationTime >= 0, relaxationTime.isFinite else { throw DynamicsError.invalidParameter("relaxation time \(relaxationTime) fs must be ≥ 0") }
        if let d = degreesOfFreedom, d < 1 { throw DynamicsError.invalidParameter("degrees of freedom \(d) must be ≥ 1") }
        self.timestep = timestep
        self.temperature = temperature
        self.relaxationTime = relaxationTime
        self.fixedDegreesOfFreedom = degreesOfFreedom
        self.random = random
    }

    public func degreesOfFreedom(atomCount: Int) -> Int {
        fixedDegreesOfFreedom ?? momentumConservingDegreesOfFreedom(atomCount)
    }

    private mutating func rescale(_ state: inout MDState) {
        let kinetic = state.kineticEnergy
        guard kinetic > 0 else { return }
        let nf = Double(degreesOfFreedom(atomCount: state.count))
        let target = 0.5 * nf * Units.boltzmann * temperature
        let c = relaxationTime > 0 ? exp(-0.5 * timestep / relaxationTime) : 0
        let r1 = random.normal()
        let s = random.chiSquared(degrees: Int(nf) - 1)
        let newKinetic = c * kinetic + (1 - c) * target * (r1 * r1 + s) / nf
            + 2 * r1 * (c * (1 - c) * kinetic * target / nf).squareRoot()
        var alpha = (max(0, newKinetic) / kinetic).squareRoot()
        if c > 0, target > 0, r1 + (c * nf * kinetic / ((1 - c) * target)).squareRoot() < 0 { alpha = -alpha }
        state.velocities.withUnsafeMutableBufferPointer { v in
            for i in 0..<v.count { v[i] *= alpha }
        }
        thermostatHeat += kinetic - state.kineticEnergy
    }

    public mutating func step(_ state: inout MDState, forces: inout ForceResult, potential: any Potential) throws {
        rescale(&state)
        kick(&state, forces.forces, 0.5 * timestep)
        drift(&state, timestep)
        forces = try potential.compute(state.configuration)
        kick(&state, forces.forces, 0.5 * timestep)
        rescale(&state)
        state.step += 1
        state.time += timestep
    }

    public func exportState() -> [String: String] {
        ThermostatState.export(integrator: name, random: random, heat: thermostatHeat)
    }

    public mutating func restoreState(_ saved: [String: String]) throws {
        (random, thermostatHeat) = try ThermostatState.restore(saved, integrator: name)
    }
}

/// What a stochastic thermostat carries from step to step, as exact text for restart files:
/// its random stream and the heat it has removed.
enum ThermostatState {
    static func export(integrator: String, random: RandomStream, heat: Double) -> [String: String] {
        var out = random.exported()
        out["integrator"] = integrator
        out["heat"] = ExactText.encode(heat)
        return out
    }

    static func restore(_ saved: [String: String], integrator: String) throws -> (RandomStream, Double) {
        guard saved["integrator"] == integrator else {
            throw DynamicsError.badCheckpoint("saved integrator is \(saved["integrator"] ?? "missing"), this run uses \(integrator)")
        }
        return (try RandomStream(restoring: saved), try ExactText.decode(saved, "heat"))
    }
}
