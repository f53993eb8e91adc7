import Geometry
import Potentials

/// The FIRE minimiser (Bitzek, Koskinen, Gähler, Moseler and Gumbsch, PRL 97, 170201, 2006)
/// with ASE's defaults and step rules.
///
/// As in ASE, the FIRE "velocities" are mass-free (v += Δt F), Δt is in ASE's FIRE units
/// (Δt² in Å²/eV), and the whole displacement of a step is capped at `maxStep` Å. The cell is
/// kept fixed.
public struct FIRE: Sendable {
    public var maxStep = 0.2
    public var initialTimestep = 0.1
    public var maxTimestep = 1.0
    public var minStepsBeforeSpeedUp = 5
    public var timestepIncrease = 1.1
    public var timestepDecrease = 0.5
    public var initialMixing = 0.1
    public var mixingDecrease = 0.99

    public init() {}

    public struct Result: Sendable {
        public var converged: Bool
        /// Number of position updates made.
        public var steps: Int
        public var energy: Double
        /// Largest force norm on any atom (eV/Å) at the final positions.
        public var maxForce: Double
        /// True when `stopRequested` ended the minimisation, or the potential abandoned an
        /// evaluation on a stop request (``EvaluationStopped``): the positions are then those of
        /// the step before.
        public var stopped = false
        /// The forces (eV/Å) at the final positions.
        public var forces: [Vec3] = []
    }

    /// Moves `positions` of `state` downhill until every force is below `forceTolerance`
    /// (eV/Å) or `maxSteps` updates were made. `observer` sees each step's number and forces.
    public func minimize(_ state: inout MDState, potential: any Potential, forceTolerance: Double = 0.05,
                         maxSteps: Int = 1000, observer: ((Int, ForceResult) throws -> Void)? = nil,
                         stopRequested: () -> Bool = { false }) throws -> Result {
        var v = [Vec3](repeating: .zero, count: state.count)
        var dt = initialTimestep, mixing = initialMixing
        var stepsSinceReset = 0
        var first = true
        var steps = 0
        // The last positions whose forces are known, for a stop that abandons an evaluation.
        var last: (positions: [Vec3], result: ForceResult, maxForce: Double)? = nil
        while true {
            let result: ForceResult
            do {
                result = try potential.compute(state.configuration)
            } catch let stop as EvaluationStopped {
                guard let last else { throw stop }
                state.positions = last.positions
                return Result(converged: false, steps: steps - 1, energy: last.result.energy, maxForce: last.maxForce,
                              stopped: true, forces: last.result.forces)
            }
            let f = result.forces
            if let bad = f.firstIndex(where: { !$0.isFinite }) {
                throw DynamicsError.nonFinite(step: steps, atom: bad, quantity: "force during minimisation")
            }
            let maxForce = f.map { norm($0) }.max() ?? 0
            try observer?(steps, result)
            if maxForce < forceTolerance || steps >= maxSteps {
                return Result(converged: maxForce < forceTolerance, steps: steps, energy: result.energy, maxForce: maxForce, forces: f)
            }
            // Polled once per step, so the positions returned are those the forces belong to.
            if stopRequested() {
                return Result(converged: false, steps: steps, energy: result.energy, maxForce: maxForce, stopped: true, forces: f)
            }
            if !first {
                var vf = 0.0, vv = 0.0, ff = 0.0
                for i in 0..<v.count { vf += dot(f[i], v[i]); vv += dot(v[i], v[i]); ff += dot(f[i], f[i]) }
                if vf > 0 {
                    let scale = mixing * (vv / ff).squareRoot()
                    for i in 0..<v.count { v[i] = (1 - mixing) * v[i] + scale * f[i] }
                    if stepsSinceReset > minStepsBeforeSpeedUp {
                        dt = min(dt * timestepIncrease, maxTimestep)
                        mixing *= mixingDecrease
                    }
                    stepsSinceReset += 1
                } else {
                    for i in 0..<v.count { v[i] = .zero }
                    mixing = initialMixing
                    dt *= timestepDecrease
                    stepsSinceReset = 0
                }
            }
            first = false
            last = (state.positions, result, maxForce)
            var dr2 = 0.0
            for i in 0..<v.count {
                v[i] += dt * f[i]
                dr2 += dot(dt * v[i], dt * v[i])
            }
            let limit = dr2.squareRoot() > maxStep ? maxStep / dr2.squareRoot() : 1
            for i in 0..<v.count { state.positions[i] += limit * (dt * v[i]) }
            steps += 1
        }
    }
}
