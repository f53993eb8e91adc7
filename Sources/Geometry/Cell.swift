/// A 3-vector of Doubles: positions (Å), velocities (Å/fs), forces (eV/Å).
public typealias Vec3 = SIMD3<Double>

extension SIMD3 where Scalar: FloatingPoint {
    /// Whether no component is NaN or infinite.
    @inlinable public var isFinite: Bool { x.isFinite && y.isFinite && z.isFinite }
    /// `(x, y, z)` for messages: interpolated as it is, a vector prints as `SIMD3<Double>(…)`.
    public var plainDescription: String { "(\(x), \(y), \(z))" }
}

@inlinable public func dot(_ a: Vec3, _ b: Vec3) -> Double { (a * b).sum() }
@inlinable public func cross(_ a: Vec3, _ b: Vec3) -> Vec3 {
    Vec3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}
@inlinable public func norm(_ a: Vec3) -> Double { dot(a, a).squareRoot() }

/// A 3×3 matrix stored as three rows.
public struct Mat3: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rows: (Vec3, Vec3, Vec3)

    @inlinable public init(_ r0: Vec3, _ r1: Vec3, _ r2: Vec3) { rows = (r0, r1, r2) }
    @inlinable public init(rows: [Vec3]) { self.init(rows[0], rows[1], rows[2]) }

    /// A symmetric tensor from ASE's six Voigt components, in ASE's order xx yy zz yz xz xy.
    @inlinable public init(aseVoigt v: [Double]) {
        self.init(Vec3(v[0], v[5], v[4]), Vec3(v[5], v[1], v[3]), Vec3(v[4], v[3], v[2]))
    }

    public static let zero = Mat3(.zero, .zero, .zero)
    public static let identity = Mat3(Vec3(1, 0, 0), Vec3(0, 1, 0), Vec3(0, 0, 1))

    @inlinable public subscript(row: Int) -> Vec3 {
        get { row == 0 ? rows.0 : (row == 1 ? rows.1 : rows.2) }
        set {
            switch row {
            case 0: rows.0 = newValue
            case 1: rows.1 = newValue
            default: rows.2 = newValue
            }
        }
    }
    @inlinable public subscript(row: Int, col: Int) -> Double {
        get { self[row][col] }
        set { var r = self[row]; r[col] = newValue; self[row] = r }
    }

    @inlinable public var transposed: Mat3 {
        Mat3(Vec3(rows.0.x, rows.1.x, rows.2.x), Vec3(rows.0.y, rows.1.y, rows.2.y),
             Vec3(rows.0.z, rows.1.z, rows.2.z))
    }
    @inlinable public var determinant: Double { dot(rows.0, cross(rows.1, rows.2)) }
    @inlinable public var trace: Double { rows.0.x + rows.1.y + rows.2.z }

    /// The inverse, or nil for a singular matrix.
    public var inverse: Mat3? {
        let det = determinant
        guard det != 0, det.isFinite else { return nil }
        // Columns of the inverse are the cross products of the rows divided by the determinant.
        let c0 = cross(rows.1, rows.2) / det, c1 = cross(rows.2, rows.0) / det, c2 = cross(rows.0, rows.1) / det
        return Mat3(c0, c1, c2).transposed
    }

    /// Row vector times matrix: `v · M`.
    @inlinable public func leftMultiply(_ v: Vec3) -> Vec3 { v.x * rows.0 + v.y * rows.1 + v.z * rows.2 }
    /// Matrix times column vector: `M v`.
    @inlinable public func rightMultiply(_ v: Vec3) -> Vec3 { Vec3(dot(rows.0, v), dot(rows.1, v), dot(rows.2, v)) }

    @inlinable public static func * (a: Mat3, b: Mat3) -> Mat3 {
        Mat3(b.leftMultiply(a.rows.0), b.leftMultiply(a.rows.1), b.leftMultiply(a.rows.2))
    }
    @inlinable public static func + (a: Mat3, b: Mat3) -> Mat3 { Mat3(a.rows.0 + b.rows.0, a.rows.1 + b.rows.1, a.rows.2 + b.rows.2) }
    @inlinable public static func - (a: Mat3, b: Mat3) -> Mat3 { Mat3(a.rows.0 - b.rows.0, a.rows.1 - b.rows.1, a.rows.2 - b.rows.2) }
    @inlinable public static func * (s: Double, a: Mat3) -> Mat3 { Mat3(s * a.rows.0, s * a.rows.1, s * a.rows.2) }
    @inlinable public static func += (a: inout Mat3, b: Mat3) { a = a + b }

    /// The outer product `a ⊗ b` (row i is `a[i] * b`).
    @inlinable public static func outer(_ a: Vec3, _ b: Vec3) -> Mat3 { Mat3(a.x * b, a.y * b, a.z * b) }

    public static func == (a: Mat3, b: Mat3) -> Bool { a.rows.0 == b.rows.0 && a.rows.1 == b.rows.1 && a.rows.2 == b.rows.2 }
    public func hash(into h: inout Hasher) { for r in [rows.0, rows.1, rows.2] { h.combine(r) } }
    /// Rows as plain numbers: a `Vec3` prints as `SIMD3<Double>(…)`, which reached users in
    /// cell errors.
    public var description: String {
        func row(_ v: Vec3) -> String { "(\(v.x), \(v.y), \(v.z))" }
        return "[\(row(rows.0)), \(row(rows.1)), \(row(rows.2))]"
    }
}

/// Periodicity along the three cell axes.
public struct Periodicity: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var x: Bool, y: Bool, z: Bool
    public init(_ x: Bool, _ y: Bool, _ z: Bool) { self.x = x; self.y = y; self.z = z }
    public static let all = Periodicity(true, true, true)
    public static let none = Periodicity(false, false, false)
    @inlinable public subscript(k: Int) -> Bool {
        get { k == 0 ? x : (k == 1 ? y : z) }
        set { if k == 0 { x = newValue } else if k == 1 { y = newValue } else { z = newValue } }
    }
    public var any: Bool { x || y || z }
    public var description: String { [x, y, z].map { $0 ? "T" : "F" }.joined(separator: " ") }
}

/// Errors about cell geometry.
public enum GeometryError: Error, CustomStringConvertible, Equatable {
    case singularCell(String)
    case invalidCellParameters(String)
    /// The cutoff reaches more periodic images than a neighbour list can hold.
    case cellTooSmall(String)
    /// An atom too many cell lengths outside the cell for its image to be counted.
    case positionOutOfRange(String)

    public var description: String {
        switch self {
        case .positionOutOfRange(let s): return "position out of range: \(s)"
        case .singularCell(let s): return "singular cell: \(s)"
        case .invalidCellParameters(let s): return "invalid cell parameters: \(s)"
        case .cellTooSmall(let s): return "cell too small for the cutoff: \(s)"
        }
    }
}

/// A simulation cell: three lattice vectors (the rows of `matrix`, Å) and periodicity per axis.
///
/// Orthorhombic and general triclinic cells are the same type; any orientation is accepted
/// (ASE stores cells unrotated; AMBER files rebuild them with a along x and b in the xy plane).
/// A cell that is periodic along no axis still carries its vectors; a molecule in vacuum has
/// no cell at all (`Cell?` is nil wherever the engine accepts one).
public struct Cell: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let matrix: Mat3
    public let pbc: Periodicity
    /// Inverse of `matrix`: fractional = cartesian · inverse.
    public let inverse: Mat3

    public init(matrix: Mat3, pbc: Periodicity = .all) throws {
        // Relative to the edges' product: lengths and angles of 120°, 120°, 120° leave a volume of
        // about 3e-8 abc from round-off, which an absolute bound passed for any cell over 1e-4 Å.
        // (An edge of 1e300 Å, the box the neighbour search puts around a stray atom, has no
        // finite squared length: then the absolute bound alone.)
        let edgeProduct = norm(matrix.rows.0) * norm(matrix.rows.1) * norm(matrix.rows.2)
        let flatness = edgeProduct.isFinite ? 1e-6 * edgeProduct : 0
        guard let inv = matrix.inverse, abs(matrix.determinant) > max(1e-12, flatness) else {
            throw GeometryError.singularCell("lattice vectors \(matrix) span no volume")
        }
        self.matrix = matrix
        self.pbc = pbc
        self.inverse = inv
    }

    private init(validMatrix: Mat3, inverse: Mat3, pbc: Periodicity) {
        self.matrix = validMatrix
        self.inverse = inverse
        self.pbc = pbc
    }

    /// A non-periodic 1 Å cube.
    public static let unitBox = Cell(validMatrix: .identity, inverse: .identity, pbc: .none)

    /// An orthorhombic box with edge lengths `lengths` (Å).
    public static func orthorhombic(_ lengths: Vec3, pbc: Periodicity = .all) throws -> Cell {
        guard lengths.min() > 0, lengths.isFinite else {
            throw GeometryError.invalidCellParameters("box lengths \(lengths.plainDescription) must be positive")
        }
        return try Cell(matrix: Mat3(Vec3(lengths.x, 0, 0), Vec3(0, lengths.y, 0), Vec3(0, 0, lengths.z)), pbc: pbc)
    }

    /// A cell from lengths a, b, c (Å) and angles α (b,c), β (a,c), γ (a,b) in degrees, in the
    /// standard orientation: a along x, b in the xy plane (the AMBER and LAMMPS convention).
    public static func fromLengthsAndAngles(_ lengths: Vec3, _ anglesDegrees: Vec3,
                                            pbc: Periodicity = .all) throws -> Cell {
        let (a, b, c) = (lengths.x, lengths.y, lengths.z)
        let rad = anglesDegrees * (Double.pi / 180)
        let (ca, cb, cg) = (cosExact(rad.x, anglesDegrees.x), cosExact(rad.y, anglesDegrees.y), cosExact(rad.z, anglesDegrees.z))
        let sg = sinExact(rad.z, anglesDegrees.z)
        guard a > 0, b > 0, c > 0, sg > 0 else {
            throw GeometryError.invalidCellParameters("lengths \(lengths.plainDescription), angles \(anglesDegrees.plainDescription)")
        }
        let cx = c * cb
        let cy = c * (ca - cb * cg) / sg
        let cz2 = c * c - cx * cx - cy * cy
        guard cz2 > 0 else {
            throw GeometryError.invalidCellParameters("angles \(anglesDegrees.plainDescription) do not form a cell")
        }
        return try Cell(matrix: Mat3(Vec3(a, 0, 0), Vec3(b * cg, b * sg, 0), Vec3(cx, cy, cz2.squareRoot())), pbc: pbc)
    }

    /// Cosines of right angles are exactly zero, so an orthorhombic box read from lengths and
    /// angles is exactly orthorhombic.
    private static func cosExact(_ r: Double, _ deg: Double) -> Double { deg == 90 ? 0 : (deg == 60 ? 0.5 : cos(r)) }
    private static func sinExact(_ r: Double, _ deg: Double) -> Double { deg == 90 ? 1 : sin(r) }

    public var a: Vec3 { matrix.rows.0 }
    public var b: Vec3 { matrix.rows.1 }
    public var c: Vec3 { matrix.rows.2 }

    public var volume: Double { abs(matrix.determinant) }

    /// Lengths a, b, c (Å).
    public var lengths: Vec3 { Vec3(norm(a), norm(b), norm(c)) }

    /// Angles α (between b and c), β (a, c), γ (a, b) in degrees.
    public var anglesDegrees: Vec3 {
        func angle(_ u: Vec3, _ v: Vec3) -> Double {
            let cosine = max(-1, min(1, dot(u, v) / (norm(u) * norm(v))))
            return acos(cosine) * 180 / Double.pi
        }
        return Vec3(angle(b, c), angle(a, c), angle(a, b))
    }

    /// Distance between opposite faces along each axis: the largest sphere diameter that fits.
    public var perpendicularWidths: Vec3 {
        let v = volume
        return Vec3(v / norm(cross(b, c)), v / norm(cross(c, a)), v / norm(cross(a, b)))
    }

    public var isOrthorhombic: Bool {
        matrix[0, 1] == 0 && matrix[0, 2] == 0 && matrix[1, 0] == 0 && matrix[1, 2] == 0 && matrix[2, 0] == 0 && matrix[2, 1] == 0
    }

    @inlinable public func fractional(_ r: Vec3) -> Vec3 { inverse.leftMultiply(r) }
    @inlinable public func cartesian(_ f: Vec3) -> Vec3 { matrix.leftMultiply(f) }
    /// Cartesian vector of an integer image shift `n` (n·matrix).
    @inlinable public func shiftVector(_ n: SIMD3<Int32>) -> Vec3 {
        matrix.leftMultiply(Vec3(Double(n.x), Double(n.y), Double(n.z)))
    }

    /// The integer image that brings `r` into [0, 1) along each periodic axis; zero along the others.
    @inlinable public func wrapShift(_ r: Vec3) -> SIMD3<Int32> {
        let f = fractional(r)
        var n = SIMD3<Int32>(0, 0, 0)
        for k in 0..<3 where pbc[k] {
            n[k] = Int32(f[k].rounded(.down))
        }
        return n
    }

    /// `r` moved into the cell along periodic axes.
    @inlinable public func wrap(_ r: Vec3) -> Vec3 { r - shiftVector(wrapShift(r)) }

    /// Separation vector with the nearest image in the fractional sense (exact for orthorhombic
    /// cells and for separations shorter than half the perpendicular width). Pair searches use
    /// the neighbour list instead, which counts every image.
    @inlinable public func minimumImage(_ d: Vec3) -> Vec3 {
        var f = fractional(d)
        for k in 0..<3 where pbc[k] { f[k] -= f[k].rounded(.toNearestOrEven) }
        return cartesian(f)
    }

    /// A copy with lattice vectors deformed by `(I + strain)`: rows become `a · (I + ε)`.
    public func strained(by strain: Mat3) throws -> Cell {
        try Cell(matrix: matrix * (Mat3.identity + strain), pbc: pbc)
    }

    public var description: String {
        let l = lengths, g = anglesDegrees
        return "Cell(a=\(l.x) b=\(l.y) c=\(l.z) α=\(g.x) β=\(g.y) γ=\(g.z) pbc=\(pbc))"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
