import Geometry

/// Harmonic tethers: atom i is pulled towards a fixed point a_i with energy ½ k |r_i − a_i|²,
/// or ½ Σ_α k_α (r_i − a_i)_α² with one spring constant per Cartesian axis.
///
/// In a periodic cell the displacement is taken to the nearest image of the anchor, so
/// wrapping positions does not change the energy. The anchors are taken to move with the
/// cell under a homogeneous strain (as in LAMMPS `fix spring/self`), so the virial is
/// Σ d ⊗ f with d = r_i − a_i.
public final class HarmonicRestraint: Potential {
    public struct Tether: Sendable, Equatable {
        /// Index of the atom (0-based).
        public var atom: Int
        /// The point it is tied to (Å).
        public var anchor: Vec3
        /// k along x, y, z in eV/Å² (all equal for an isotropic tether).
        public var springConstants: Vec3
        public init(atom: Int, anchor: Vec3, springConstant: Double) {
            self.init(atom: atom, anchor: anchor, springConstants: Vec3(repeating: springConstant))
        }
        /// An anisotropic tether (distinct frequencies per axis).
        public init(atom: Int, anchor: Vec3, springConstants: Vec3) {
            self.atom = atom
            self.anchor = anchor
            self.springConstants = springConstants
        }
    }

    public let tethers: [Tether]
    public var name: String { "harmonic-restraint" }

    public init(tethers: [Tether]) throws {
        for (n, t) in tethers.enumerated() {
            let k = t.springConstants
            guard t.atom >= 0, k.isFinite, k.min() >= 0, t.anchor.isFinite else {
                throw PotentialError("harmonic restraint \(n): atom \(t.atom), k = \(k) eV/Å², anchor \(t.anchor) must be a valid atom with finite k ≥ 0")
            }
        }
        self.tethers = tethers
    }

    /// Tethers every atom to `positions` with one spring constant.
    public convenience init(anchoring positions: [Vec3], springConstant: Double) throws {
        try self.init(tethers: positions.enumerated().map {
            Tether(atom: $0.offset, anchor: $0.element, springConstant: springConstant)
        })
    }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        var result = ForceResult.zero(atoms: configuration.count)
        let periodicCell = configuration.cell.flatMap { $0.pbc.any ? $0 : nil }
        for t in tethers {
            guard t.atom < configuration.count else {
                throw PotentialError("harmonic restraint: atom \(t.atom) does not exist (the system has \(configuration.count) atoms)")
            }
            var d = configuration.positions[t.atom] - t.anchor
            if let cell = periodicCell { d = cell.minimumImage(d) }
            let f = -t.springConstants * d
            result.energy += 0.5 * (t.springConstants * d * d).sum()
            result.forces[t.atom] += f
            result.virial += Mat3.outer(d, f)
        }
        return result
    }
}

/// Harmonic bonds between listed pairs: ½ k (|r_j − r_i| − r₀)², with the separation taken
/// to the nearest image in a periodic cell (a bond must be shorter than half the cell).
public final class HarmonicBonds: Potential {
    public struct Bond: Sendable, Equatable {
        public var i: Int
        public var j: Int
        /// k in eV/Å².
        public var springConstant: Double
        /// r₀ in Å.
        public var restLength: Double
        public init(_ i: Int, _ j: Int, springConstant: Double, restLength: Double) {
            self.i = i
            self.j = j
            self.springConstant = springConstant
            self.restLength = restLength
        }
    }

    public let bonds: [Bond]
    public var name: String { "harmonic-bonds" }

    public init(bonds: [Bond]) throws {
        for (n, b) in bonds.enumerated() {
            guard b.i >= 0, b.j >= 0, b.i != b.j, b.springConstant.isFinite, b.springConstant >= 0,
                  b.restLength.isFinite, b.restLength >= 0 else {
                throw PotentialError("harmonic bond \(n) (\(b.i)-\(b.j)): needs two distinct atoms, finite k ≥ 0 and r0 ≥ 0")
            }
        }
        self.bonds = bonds
        longestBond = bonds.max { $0.restLength < $1.restLength }
    }

    /// The bond of the longest rest length, the one the cell must be wide enough for.
    private let longestBond: Bond?

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        var result = ForceResult.zero(atoms: configuration.count)
        let periodicCell = configuration.cell.flatMap { $0.pbc.any ? $0 : nil }
        // A rest length beyond half the narrowest periodic width pulls the partner towards where
        // another of its images is as near: the bond would jump to that image, and the energy
        // with it (the documented rule; LAMMPS stops on "bond extent > half of periodic box length").
        if let cell = periodicCell, let b = longestBond {
            let widths = cell.perpendicularWidths
            let halfWidth = (0..<3).filter { cell.pbc[$0] }.map { widths[$0] }.min().map { $0 / 2 } ?? .infinity
            guard b.restLength < halfWidth else {
                throw PotentialError("harmonic bond \(b.i)-\(b.j): its rest length \(b.restLength) Å is not shorter than half the cell's narrowest periodic width (\(String(format: "%.4f", halfWidth)) Å), so the nearest image of atom \(b.j) is ambiguous; use a larger cell")
            }
        }
        for b in bonds {
            guard b.i < configuration.count, b.j < configuration.count else {
                throw PotentialError("harmonic bond \(b.i)-\(b.j): atom index beyond the \(configuration.count) atoms of the system")
            }
            var d = configuration.positions[b.j] - configuration.positions[b.i]
            if let cell = periodicCell { d = cell.minimumImage(d) }
            let r = norm(d)
            let stretch = r - b.restLength
            result.energy += 0.5 * b.springConstant * stretch * stretch
            // A zero-length bond has no direction; its force vanishes by symmetry.
            guard r > 0 else { continue }
            let fj = (-b.springConstant * stretch / r) * d
            result.forces[b.j] += fj
            result.forces[b.i] -= fj
            result.virial += Mat3.outer(d, fj)
        }
        return result
    }
}

/// The sum of several potentials (e.g. Lennard-Jones plus restraints).
public final class PotentialSum: Potential {
    public let terms: [any Potential]
    public var name: String { "sum(" + terms.map(\.name).joined(separator: ", ") + ")" }

    public init(_ terms: [any Potential]) {
        self.terms = terms
    }

    public func compute(_ configuration: Configuration) throws -> ForceResult {
        var total = ForceResult.zero(atoms: configuration.count)
        for term in terms {
            let part = try term.compute(configuration)
            guard part.forces.count == configuration.count else {
                throw PotentialError("\(term.name) returned \(part.forces.count) forces for \(configuration.count) atoms")
            }
            total.energy += part.energy
            total.virial += part.virial
            total.forces.withUnsafeMutableBufferPointer { f in
                part.forces.withUnsafeBufferPointer { p in
                    for i in 0..<f.count { f[i] += p[i] }
                }
            }
        }
        return total
    }

    public func invalidateCaches() { terms.forEach { $0.invalidateCaches() } }

    public var listAnchorCount: Int { terms.reduce(0) { $0 + $1.listAnchorCount } }

    /// The terms' anchors in term order; none unless every term has all of its own.
    public var listAnchors: [[Vec3]] {
        var all: [[Vec3]] = []
        for term in terms {
            let own = term.listAnchors
            guard own.count == term.listAnchorCount else { return [] }
            all += own
        }
        return all
    }

    public func restoreListAnchors(_ anchors: [[Vec3]], atomCount: Int, cell: Cell?) throws -> Bool {
        guard anchors.count == listAnchorCount, anchors.allSatisfy({ $0.count == atomCount }) else { return false }
        var next = 0
        for term in terms {
            let own = Array(anchors[next ..< next + term.listAnchorCount])
            next += own.count
            guard try term.restoreListAnchors(own, atomCount: atomCount, cell: cell) else {
                invalidateCaches()
                return false
            }
        }
        return true
    }
}
