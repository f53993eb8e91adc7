import Geometry
import Potentials

/// Everything that evolves in a molecular dynamics run, as a value.
///
/// Units: positions Å (unwrapped: never folded back into the cell by the integrators),
/// velocities Å/fs, masses amu, time fs.
public struct MDState: Sendable, Equatable {
    public var positions: [Vec3]
    public var velocities: [Vec3]
    public var masses: [Double]
    public var cell: Cell?
    public var atomicNumbers: [Int]
    /// Simulated time (fs).
    public var time: Double
    /// Number of integration steps taken since the run began.
    public var step: Int

    /// - Throws: `DynamicsError.invalidState` naming the first atom with a bad mass or a count mismatch.
    public init(positions: [Vec3], velocities: [Vec3]? = nil, masses: [Double], cell: Cell?,
                atomicNumbers: [Int], time: Double = 0, step: Int = 0) throws {
        let n = positions.count
        guard masses.count == n, atomicNumbers.count == n, velocities.map({ $0.count == n }) ?? true else {
            throw DynamicsError.invalidState("\(n) positions but \(masses.count) masses, \(atomicNumbers.count) atomic numbers and \(velocities?.count ?? n) velocities")
        }
        if let bad = masses.firstIndex(where: { !($0 > 0 && $0.isFinite) }) {
            throw DynamicsError.invalidState("atom \(bad) has mass \(masses[bad]) amu; masses must be positive")
        }
        self.positions = positions
        self.velocities = velocities ?? [Vec3](repeating: .zero, count: n)
        self.masses = masses
        self.cell = cell
        self.atomicNumbers = atomicNumbers
        self.time = time
        self.step = step
    }

    public var count: Int { positions.count }

    /// What the potential sees.
    public var configuration: Configuration {
        Configuration(atomicNumbers: atomicNumbers, positions: positions, cell: cell)
    }

    /// Kinetic energy ½ Σ m v² (eV).
    public var kineticEnergy: Double {
        var twice = 0.0
        velocities.withUnsafeBufferPointer { v in
            masses.withUnsafeBufferPointer { m in
                for i in 0..<v.count { twice += m[i] * (v[i] * v[i]).sum() }
            }
        }
        return 0.5 * twice * Units.energyPerMassVelocitySquared
    }

    /// Kinetic temperature 2K/(N_f k_B) (K) for `degreesOfFreedom` N_f.
    public func temperature(degreesOfFreedom: Int) -> Double {
        degreesOfFreedom > 0 ? 2 * kineticEnergy / (Double(degreesOfFreedom) * Units.boltzmann) : 0
    }

    /// Total momentum Σ m v (amu·Å/fs).
    public var totalMomentum: Vec3 {
        var p = Vec3.zero
        for i in 0..<count { p += masses[i] * velocities[i] }
        return p
    }

    /// Subtracts the centre-of-mass velocity so that the total momentum is zero.
    public mutating func removeCenterOfMassMotion() {
        let totalMass = masses.reduce(0, +)
        guard totalMass > 0 else { return }
        let vcm = totalMomentum / totalMass
        for i in 0..<count { velocities[i] -= vcm }
    }
}

/// Errors of the dynamics layer; each names the step, atom or key concerned.
public enum DynamicsError: Error, CustomStringConvertible, Equatable {
    case invalidState(String)
    case invalidParameter(String)
    /// A non-finite energy, force, position or velocity appeared at `step`; `atom` is the
    /// first atom concerned (nil when only the energy is bad). The simulation keeps the last
    /// good state.
    case nonFinite(step: Int, atom: Int?, quantity: String)
    /// The potential failed on the positions of `step` (an atom out of range of the neighbour
    /// search, an external code's error); the simulation keeps the last good state.
    case stepFailed(step: Int, reason: String)
    case badCheckpoint(String)

    public var description: String {
        switch self {
        case .invalidState(let s): return "invalid MD state: \(s)"
        case .invalidParameter(let s): return "invalid parameter: \(s)"
        case .nonFinite(let step, let atom, let quantity):
            let where_ = atom.map { "atom \($0)" } ?? "the system"
            // At step 0 there is no earlier state to keep: the structure itself is the cause.
            if step == 0 {
                return "non-finite \(quantity) on \(where_) in the starting structure (atoms on top of each other, or a coordinate out of range)"
            }
            return "non-finite \(quantity) on \(where_) at step \(step); the last good state (step \(step - 1)) is kept"
        case .stepFailed(let step, let reason):
            return "step \(step): \(reason); the last good state (step \(step - 1)) is kept"
        case .badCheckpoint(let s): return "cannot restore checkpoint: \(s)"
        }
    }
}

extension MDState: Codable {
    private enum Keys: String, CodingKey {
        case positions, velocities, masses, atomicNumbers, time, step, cellRows, pbc
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        var cell: Cell? = nil
        if let rows = try c.decodeIfPresent([Vec3].self, forKey: .cellRows) {
            let p = try c.decode([Bool].self, forKey: .pbc)
            guard rows.count == 3, p.count == 3 else { throw DynamicsError.badCheckpoint("cell needs 3 rows and 3 periodicity flags") }
            cell = try Cell(matrix: Mat3(rows: rows), pbc: Periodicity(p[0], p[1], p[2]))
        }
        try self.init(positions: c.decode([Vec3].self, forKey: .positions),
                      velocities: c.decode([Vec3].self, forKey: .velocities),
                      masses: c.decode([Double].self, forKey: .masses), cell: cell,
                      atomicNumbers: c.decode([Int].self, forKey: .atomicNumbers),
                      time: c.decode(Double.self, forKey: .time), step: c.decode(Int.self, forKey: .step))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(positions, forKey: .positions)
        try c.encode(velocities, forKey: .velocities)
        try c.encode(masses, forKey: .masses)
        try c.encode(atomicNumbers, forKey: .atomicNumbers)
        try c.encode(time, forKey: .time)
        try c.encode(step, forKey: .step)
        if let cell = cell {
            try c.encode([cell.a, cell.b, cell.c], forKey: .cellRows)
            try c.encode([cell.pbc.x, cell.pbc.y, cell.pbc.z], forKey: .pbc)
        }
    }
}
