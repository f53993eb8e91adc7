import Geometry
import Potentials

/// Observes a running simulation every `stride` steps (trajectory, restart and log writers).
public protocol Reporter: AnyObject {
    /// Report at steps that are multiples of this.
    var stride: Int { get }
    /// Called after each step whose number is a multiple of `stride` (and for the initial
    /// state of a fresh run, step 0).
    func report(_ simulation: Simulation) throws
    /// Called when `run(steps:)` returns, however it ended (flush files here).
    func runFinished(_ simulation: Simulation) throws
}

extension Reporter {
    public func runFinished(_ simulation: Simulation) throws {}
}

/// Thermodynamic quantities of one instant.
public struct ThermoSample: Sendable {
    public var step: Int
    /// fs.
    public var time: Double
    /// eV.
    public var potentialEnergy: Double
    /// eV.
    public var kineticEnergy: Double
    public var totalEnergy: Double { potentialEnergy + kineticEnergy }
    /// Kinetic temperature (K) with the integrator's degrees of freedom.
    public var temperature: Double
    /// (2K + tr W)/(3V) in bar for a cell periodic along all three axes, else nil.
    public var pressure: Double?
    /// Cell volume (Å³) for a cell periodic along all three axes, else nil.
    public var volume: Double?
    /// Mass density (g/cm³) for a cell periodic along all three axes, else nil.
    public var density: Double?
    /// Total energy plus the heat the thermostat removed (eV): constant up to integration error.
    public var conservedEnergy: Double
}

/// Everything needed to continue a run bit for bit: the state, the integrator's evolving
/// state (random stream, thermostat heat) and the positions the potential's neighbour lists
/// were built from (``Potential/listAnchors``). Forces are recomputed from positions on restore.
public struct Checkpoint: Codable, Sendable, Equatable {
    public var state: MDState
    public var integrator: [String: String]
    public var listAnchors: [[Vec3]]
    public init(state: MDState, integrator: [String: String], listAnchors: [[Vec3]] = []) {
        self.state = state
        self.integrator = integrator
        self.listAnchors = listAnchors
    }
}

/// How `run(steps:)` ended.
public enum RunOutcome: Equatable, Sendable {
    case completed
    /// `stopRequested` returned true, or the potential abandoned an evaluation on a stop
    /// request (``EvaluationStopped``); the state is that after the last completed step.
    case stopped(atStep: Int)
}

/// A state bound to an integrator and a potential (OpenMM's Context): executes steps and
/// notifies reporters.
public final class Simulation {
    public private(set) var state: MDState
    public private(set) var integrator: any Integrator
    public let potential: any Potential
    /// Energy, forces and virial of `state.positions`.
    public private(set) var forces: ForceResult
    /// Polled before every step; return true to stop the run (connect SIGINT/SIGTERM here).
    public var stopRequested: () -> Bool = { false }
    /// Degrees of freedom used for the temperature; defaults to the integrator's choice.
    public var degreesOfFreedom: Int
    /// The step the current `run(steps:)` will end at (for progress reporters).
    public private(set) var targetStep: Int
    public private(set) var reporters: [any Reporter] = []

    /// Binds `state`, `integrator` and `potential` and computes the initial forces.
    /// - Throws: the potential's errors, or `DynamicsError.nonFinite` for a bad start.
    public init(state: MDState, integrator: any Integrator, potential: any Potential) throws {
        self.state = state
        self.integrator = integrator
        self.potential = potential
        self.degreesOfFreedom = integrator.degreesOfFreedom(atomCount: state.count)
        self.targetStep = state.step
        self.forces = ForceResult.zero(atoms: state.count)
        self.forces = try potential.compute(state.configuration)
        try Simulation.checkFinite(state, forces)
    }

    /// Continues from `checkpoint` with a freshly configured `integrator` (same parameters as the
    /// interrupted run) whose evolving state is replaced by the saved one, and the potential's
    /// neighbour lists rebuilt from the checkpoint's anchors. Without anchors that fit (a
    /// checkpoint of another potential or an older restart file) the lists are built from the
    /// restored positions: the run is then the same only up to the last bits of its pair sums.
    public convenience init(restoring checkpoint: Checkpoint, integrator: any Integrator,
                            potential: any Potential) throws {
        var restored = integrator
        try restored.restoreState(checkpoint.integrator)
        let state = checkpoint.state
        let restoredLists: Bool
        do {
            restoredLists = try potential.restoreListAnchors(checkpoint.listAnchors, atomCount: state.count, cell: state.cell)
        } catch {
            throw DynamicsError.badCheckpoint("its neighbour-list positions: \(error)")
        }
        if !restoredLists { potential.invalidateCaches() }
        try self.init(state: state, integrator: restored, potential: potential)
    }

    public func addReporter(_ reporter: any Reporter) { reporters.append(reporter) }

    /// The state to write into a restart file, at any step: a run restarted from it continues
    /// with the bits this one continues with. Call it from the restart reporter.
    ///
    /// Taking one changes nothing in this run, so where restarts are written (or whether a
    /// signal stopped the run) does not move the trajectory.
    public func checkpoint() -> Checkpoint {
        Checkpoint(state: state, integrator: integrator.exportState(), listAnchors: potential.listAnchors)
    }

    /// Current thermodynamic quantities.
    public var thermo: ThermoSample {
        let kinetic = state.kineticEnergy
        var pressure: Double? = nil, volume: Double? = nil, density: Double? = nil
        if let cell = state.cell, cell.pbc.x && cell.pbc.y && cell.pbc.z {
            pressure = (2 * kinetic + forces.virial.trace) / (3 * cell.volume) * Units.barPerEVPerCubicAngstrom
            volume = cell.volume
            density = state.masses.reduce(0, +) * Units.gramsPerCubicCentimetrePerAmuPerCubicAngstrom / cell.volume
        }
        return ThermoSample(step: state.step, time: state.time, potentialEnergy: forces.energy, kineticEnergy: kinetic,
                            temperature: state.temperature(degreesOfFreedom: degreesOfFreedom), pressure: pressure,
                            volume: volume, density: density,
                            conservedEnergy: forces.energy + kinetic + integrator.thermostatHeat)
    }

    /// Runs `steps` steps, polling `stopRequested` before each and reporting after each. A
    /// potential that throws ``EvaluationStopped`` within a step stops the run the same way,
    /// after the step before.
    ///
    /// A step that produces a non-finite energy, force, position or velocity throws
    /// `DynamicsError.nonFinite` naming the step and first bad atom, and one whose forces the
    /// potential cannot compute `DynamicsError.stepFailed`; `state`, `forces` and the
    /// integrator then still hold the last good step, ready to be written.
    @discardableResult
    public func run(steps: Int) throws -> RunOutcome {
        targetStep = state.step + max(0, steps)
        let outcome: RunOutcome
        do {
            outcome = try advance(steps: max(0, steps))
        } catch {
            // The run's own error matters more than a reporter failing to flush after it.
            for r in reporters { try? r.runFinished(self) }
            throw error
        }
        for r in reporters { try r.runFinished(self) }
        return outcome
    }

    private func advance(steps: Int) throws -> RunOutcome {
        if state.step == 0 {
            for r in reporters where r.stride > 0 { try r.report(self) }
        }
        for _ in 0..<steps {
            if stopRequested() { return .stopped(atStep: state.step) }
            var next = state
            var nextForces = forces
            var nextIntegrator = integrator
            // The step may rebuild a list before a stop abandons it; the restart must carry the
            // lists this state was computed with (a list built elsewhere can sum in another order).
            let anchors = potential.listAnchors
            do {
                try nextIntegrator.step(&next, forces: &nextForces, potential: potential)
            } catch let error as DynamicsError {
                throw error
            } catch is EvaluationStopped {
                // Anchors it gave itself a step ago fit; should they not, the lists start afresh.
                if (try? potential.restoreListAnchors(anchors, atomCount: state.count, cell: state.cell)) != true {
                    potential.invalidateCaches()
                }
                return .stopped(atStep: state.step)
            } catch {
                // Named with its step, as a non-finite result is, so that the caller knows the
                // state it holds is the last good one.
                throw DynamicsError.stepFailed(step: state.step + 1, reason: "\(error)")
            }
            try Simulation.checkFinite(next, nextForces)
            state = next
            forces = nextForces
            integrator = nextIntegrator
            for r in reporters where r.stride > 0 && state.step % r.stride == 0 { try r.report(self) }
        }
        return .completed
    }

    static func checkFinite(_ state: MDState, _ forces: ForceResult) throws {
        func bad(_ v: Vec3) -> Bool { !v.isFinite }
        var allFinite = forces.energy.isFinite
        for i in 0..<state.count where bad(state.positions[i]) || bad(state.velocities[i]) || bad(forces.forces[i]) {
            allFinite = false
            break
        }
        if allFinite { return }
        for i in 0..<state.count {
            if bad(state.positions[i]) { throw DynamicsError.nonFinite(step: state.step, atom: i, quantity: "position") }
            if bad(forces.forces[i]) { throw DynamicsError.nonFinite(step: state.step, atom: i, quantity: "force") }
            if bad(state.velocities[i]) { throw DynamicsError.nonFinite(step: state.step, atom: i, quantity: "velocity") }
        }
        throw DynamicsError.nonFinite(step: state.step, atom: nil, quantity: "potential energy")
    }
}
