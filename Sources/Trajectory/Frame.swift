import Geometry

/// A structure as read from a file: atoms, positions, an optional cell and optional
/// per-atom and per-frame data. Units are internal (Å, Å/fs, eV, eV/Å) whatever the file used.
public struct Structure: Sendable {
    public var symbols: [String]
    public var atomicNumbers: [Int]
    public var positions: [Vec3]
    public var cell: Cell?
    /// Velocities (Å/fs), when the file has them.
    public var velocities: [Vec3]?
    /// Forces (eV/Å), when the file has them.
    public var forces: [Vec3]?
    /// Masses (amu), when the file has them; otherwise standard masses apply.
    public var masses: [Double]?
    /// Per-frame scalar and vector properties from the file (`energy`, `dipole`, `stress`, ...).
    public var info: [String: [Double]]
    /// Per-frame properties that are not numbers. Booleans are kept as "T" / "F".
    public var textInfo: [String: String]
    /// Other numeric per-atom columns of an extended XYZ file (`charges`, `tags`, ...), by name.
    public var atomArrays: [String: AtomArray]

    public init(symbols: [String], atomicNumbers: [Int], positions: [Vec3], cell: Cell? = nil,
                velocities: [Vec3]? = nil, forces: [Vec3]? = nil, masses: [Double]? = nil,
                info: [String: [Double]] = [:], textInfo: [String: String] = [:],
                atomArrays: [String: AtomArray] = [:]) {
        self.symbols = symbols
        self.atomicNumbers = atomicNumbers
        self.positions = positions
        self.cell = cell
        self.velocities = velocities
        self.forces = forces
        self.masses = masses
        self.info = info
        self.textInfo = textInfo
        self.atomArrays = atomArrays
    }

    public var count: Int { positions.count }
    public var configuration: Configuration { Configuration(atomicNumbers: atomicNumbers, positions: positions, cell: cell) }
}

/// A numeric per-atom column: `width` values per atom, atom-major (`values[atom * width + k]`).
public struct AtomArray: Sendable, Equatable {
    /// How the column is typed in an extended XYZ `Properties` entry.
    public enum Kind: String, Sendable {
        case real = "R", integer = "I", logical = "L"
    }
    public var kind: Kind
    public var width: Int
    public var values: [Double]

    public init(kind: Kind, width: Int, values: [Double]) {
        self.kind = kind
        self.width = width
        self.values = values
    }
}

/// One frame of a trajectory, in internal units.
public struct Frame: Sendable {
    /// Simulation time (fs).
    public var time: Double
    /// Positions (Å).
    public var positions: [Vec3]
    /// Velocities (Å/fs), when stored.
    public var velocities: [Vec3]?
    /// Forces (eV/Å), when stored.
    public var forces: [Vec3]?
    /// The cell, for periodic systems.
    public var cell: Cell?
    /// Extra per-frame variables by name, in internal units: `potential_energy` (eV, 1 value),
    /// `kinetic_energy` (eV), `temperature` (K), `dipole` (e·Å, 3 values).
    public var extras: [String: [Double]]

    public init(time: Double, positions: [Vec3], velocities: [Vec3]? = nil, forces: [Vec3]? = nil,
                cell: Cell? = nil, extras: [String: [Double]] = [:]) {
        self.time = time
        self.positions = positions
        self.velocities = velocities
        self.forces = forces
        self.cell = cell
        self.extras = extras
    }
}

/// Errors reading or writing structure and trajectory files; each names the file and, where
/// it applies, the line, frame or variable.
public struct TrajectoryError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// An error located in a text file: `file:line: message`, with the frame index when the
    /// file holds several frames.
    static func at(_ file: String, line: Int, frame: Int? = nil, _ message: String) -> TrajectoryError {
        let frameText = frame.map { " (frame \($0))" } ?? ""
        return TrajectoryError("\(file):\(line)\(frameText): \(message)")
    }
}
