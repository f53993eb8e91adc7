/// What a potential needs to know about a system at one instant: which atoms, where, in which cell.
public struct Configuration: Sendable {
    /// Atomic numbers, one per atom.
    public var atomicNumbers: [Int]
    /// Cartesian positions (Å), not necessarily wrapped into the cell.
    public var positions: [Vec3]
    /// The cell, or nil for a molecule in vacuum.
    public var cell: Cell?

    public init(atomicNumbers: [Int], positions: [Vec3], cell: Cell?) {
        self.atomicNumbers = atomicNumbers
        self.positions = positions
        self.cell = cell
    }

    public var count: Int { positions.count }
}
