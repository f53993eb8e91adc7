import Foundation
import Geometry

/// ASE's unit of time, Å·√(amu/eV), in femtoseconds (≈ 10.1805 fs).
///
/// ASE stores momenta in amu·Å per this unit, so velocities in extended XYZ files pass
/// through it. It is computed from the CODATA 2014 e and amu that ASE uses by default
/// (`ase.units`), not from `Units` (CODATA 2018; the two differ by 4e-9 relative), so that
/// momenta written by ASE give exactly the velocities ASE itself reports.
public let aseTimeUnitInFemtoseconds: Double = {
    let elementaryCharge2014 = 1.6021766208e-19, atomicMassUnit2014 = 1.660539040e-27
    return 1 / (1e-15 * 1e10 * (elementaryCharge2014 / atomicMassUnit2014).squareRoot())
}()

/// Extended XYZ in ASE's flavour, and plain XYZ.
///
/// A frame is an atom count, a comment line of `key=value` pairs and one line per atom whose
/// columns the `Properties` entry describes (`species:S:1:pos:R:3:forces:R:3`, ...).
/// Recognised per-atom columns and their units:
///
/// | column | meaning |
/// |---|---|
/// | `species` (S:1), `Z` (I:1) | element symbol, atomic number |
/// | `pos` / `positions` (R:3) | positions, Å |
/// | `forces` / `force` (R:3) | forces, eV/Å |
/// | `momenta` (R:3) | ASE momenta, amu·Å/(ASE time unit); converted to velocities in Å/fs with the masses |
/// | `velocities` (R:3) | velocities in ASE units, Å/(ASE time unit) (what `atoms.get_velocities()` returns) |
/// | `vel` (R:3) | velocities in Å/fs (the GPUMD convention) |
/// | `masses` / `mass` (R:1) | masses, amu |
///
/// Other numeric columns land in `Structure.atomArrays`; other text columns are skipped.
/// `Lattice="9 numbers"` gives the cell rows a1 a2 a3 in any orientation; `pbc` defaults to
/// `T T T` when a lattice is given. Other entries become `info` (numbers, e.g. `energy`,
/// `dipole`, `stress`) or `textInfo` (text; booleans as `T`/`F`).
///
/// A frame whose comment line has no `=` is read as plain XYZ: symbol and three
/// coordinates per line (extra columns ignored), the comment kept as `textInfo["comment"]`.
///
/// The writer writes velocities as ASE `momenta` (plus a `masses` column when the structure
/// carries its own masses), so `ase.io.read` recovers the same velocities.
public enum ExtendedXYZ {
    /// Reads every frame of a file, or only the frames in `frames` (others are skipped
    /// without parsing their numbers).
    public static func read(path: String, frames: Range<Int>? = nil) throws -> [Structure] {
        try parse(TextBytes(path: path), frames: frames)
    }

    /// Reads frames from text in memory; `path` names the source in error messages.
    public static func read(text: String, path: String = "<text>", frames: Range<Int>? = nil) throws -> [Structure] {
        try parse(TextBytes(path: path, text: text), frames: frames)
    }

    static func parse(_ text: TextBytes, frames wanted: Range<Int>?) throws -> [Structure] {
        let path = text.path
        return try text.withScanner { scanner in
            var structures: [Structure] = []
            var frameIndex = 0
            while let countLine = scanner.nextLine() {
                if let wanted, frameIndex >= wanted.upperBound { break }
                let countRange = scanner.trimmed(countLine)
                if countRange.isEmpty {
                    if scanner.restIsBlank() { break }
                    throw TrajectoryError.at(path, line: scanner.lineNumber, frame: frameIndex,
                                             "blank line where the atom count of a frame should be")
                }
                guard let atomCount = scanner.integer(countRange), atomCount >= 0 else {
                    throw TrajectoryError.at(path, line: scanner.lineNumber, frame: frameIndex,
                                             "expected the number of atoms, found '\(scanner.string(countRange).prefix(60))'")
                }
                let countLineNumber = scanner.lineNumber
                guard let comment = scanner.nextLine() else {
                    throw TrajectoryError.at(path, line: countLineNumber, frame: frameIndex,
                                             "file ends after the atom count \(atomCount): comment line and atoms missing (truncated file?)")
                }
                if let wanted, frameIndex < wanted.lowerBound {
                    for atom in 0..<atomCount where scanner.nextLine() == nil {
                        throw TrajectoryError.at(path, line: scanner.lineNumber, frame: frameIndex,
                                                 "file ends after \(atom) of \(atomCount) atoms (truncated file?)")
                    }
                } else {
                    var frame = FrameParser(path: path, frameIndex: frameIndex, atomCount: atomCount)
                    structures.append(try frame.parse(&scanner, comment: comment))
                }
                frameIndex += 1
            }
            if structures.isEmpty && frameIndex == 0 {
                throw TrajectoryError("\(path): no frames (empty file)")
            }
            return structures
        }
    }

    // MARK: Writing

    /// Writes frames as extended XYZ, to a temporary name renamed into place when complete.
    public static func write(_ structures: [Structure], to path: String) throws {
        var text = ""
        for s in structures { try append(s, to: &text, path: path) }
        try writeAtomically(text, to: path)
    }

    /// The extended XYZ text of frames.
    public static func text(_ structures: [Structure]) throws -> String {
        var text = ""
        for s in structures { try append(s, to: &text, path: "<text>") }
        return text
    }

    static func append(_ s: Structure, to out: inout String, path: String) throws {
        let n = s.count
        guard s.symbols.count == n else {
            throw TrajectoryError("\(path): \(s.symbols.count) symbols for \(n) positions")
        }
        var columns = "species:S:1:pos:R:3"
        var masses: [Double]? = nil
        if let custom = s.masses {
            guard custom.count == n else { throw TrajectoryError("\(path): \(custom.count) masses for \(n) atoms") }
            masses = custom
            columns += ":masses:R:1"
        }
        var momenta: [Vec3]? = nil
        if let v = s.velocities {
            guard v.count == n else { throw TrajectoryError("\(path): \(v.count) velocities for \(n) atoms") }
            let m = try masses ?? standardMasses(s.atomicNumbers, path: path)
            momenta = (0..<n).map { v[$0] * (m[$0] * aseTimeUnitInFemtoseconds) }
            columns += ":momenta:R:3"
        }
        if let f = s.forces {
            guard f.count == n else { throw TrajectoryError("\(path): \(f.count) forces for \(n) atoms") }
            columns += ":forces:R:3"
        }
        let extraNames = s.atomArrays.keys.sorted()
        for name in extraNames {
            guard let a = s.atomArrays[name], a.width > 0, a.values.count == a.width * n else {
                throw TrajectoryError("\(path): per-atom array '\(name)' does not hold width × \(n) values")
            }
            columns += ":\(name):\(a.kind.rawValue):\(a.width)"
        }

        out += "\(n)\n"
        var header: [String] = []
        if let cell = s.cell {
            let m = cell.matrix
            let values = [m[0], m[1], m[2]].flatMap { [$0.x, $0.y, $0.z] }.map(exactText)
            header.append("Lattice=\"\(values.joined(separator: " "))\"")
        }
        header.append("Properties=\(columns)")
        for key in s.info.keys.sorted() where !reservedKeys.contains(key) {
            guard var values = s.info[key], !values.isEmpty else { continue }
            if key == "stress" && values.count == 6 { values = fullStress(fromVoigt: values) }
            let text = values.map(exactText).joined(separator: " ")
            header.append("\(KeyValueLine.quoted(key))=\(values.count == 1 ? text : "\"\(text)\"")")
        }
        for key in s.textInfo.keys.sorted() where !reservedKeys.contains(key) && s.info[key] == nil {
            let value = (s.textInfo[key] ?? "").replacingOccurrences(of: "\n", with: " ")
            header.append("\(KeyValueLine.quoted(key))=\(KeyValueLine.quoted(value))")
        }
        if let cell = s.cell {
            header.append("pbc=\"\(cell.pbc.description)\"")
        } else {
            header.append("pbc=\"F F F\"")
        }
        out += header.joined(separator: " ")
        out += "\n"
        for i in 0..<n {
            out += s.symbols[i]
            appendVector(s.positions[i], to: &out)
            if let masses { out += " "; out += exactText(masses[i]) }
            if let momenta { appendVector(momenta[i], to: &out) }
            if let f = s.forces { appendVector(f[i], to: &out) }
            for name in extraNames {
                guard let a = s.atomArrays[name] else { continue }
                for k in 0..<a.width {
                    let x = a.values[i * a.width + k]
                    out += " "
                    switch a.kind {
                    case .real: out += exactText(x)
                    case .integer: out += String(Int(x))
                    case .logical: out += x != 0 ? "T" : "F"
                    }
                }
            }
            out += "\n"
        }
    }

    /// Keys the writer produces itself from structure fields.
    static let reservedKeys: Set<String> = ["Lattice", "Properties", "pbc"]

    static func appendVector(_ v: Vec3, to out: inout String) {
        out += " "; out += exactText(v.x)
        out += " "; out += exactText(v.y)
        out += " "; out += exactText(v.z)
    }

    /// ASE's reader accepts only a 3×3 `stress`.
    static func fullStress(fromVoigt v: [Double]) -> [Double] {
        let m = Mat3(aseVoigt: v)
        return [m[0], m[1], m[2]].flatMap { [$0.x, $0.y, $0.z] }
    }

    static func standardMasses(_ numbers: [Int], path: String) throws -> [Double] {
        try numbers.map { z in
            guard let m = Elements.mass(of: z) else { throw TrajectoryError("\(path): no standard mass for atomic number \(z)") }
            return m
        }
    }
}

/// Writes text to `path` through ``replacingFile(at:temporarySuffix:_:)``, so a reader never
/// sees a half-written file.
func writeAtomically(_ text: String, to path: String) throws {
    try replacingFile(at: path) { temporary in
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw TrajectoryError("\(path): cannot write (\(error.localizedDescription))")
        }
    }
}

/// Parses the comment line and atom lines of one frame.
struct FrameParser {
    let path: String
    let frameIndex: Int
    let atomCount: Int

    enum Role { case species, positions, atomicNumber, forces, momenta, aseVelocities, velocitiesPerFs, masses, extra, skipped }

    struct Column {
        var name: String
        var type: Character
        var width: Int
        var offset: Int
        var role: Role
    }

    init(path: String, frameIndex: Int, atomCount: Int) {
        self.path = path
        self.frameIndex = frameIndex
        self.atomCount = atomCount
    }

    func error(_ line: Int, _ message: String) -> TrajectoryError {
        TrajectoryError.at(path, line: line, frame: frameIndex, message)
    }

    mutating func parse(_ scanner: inout TextScanner, comment: Range<Int>) throws -> Structure {
        let commentLine = scanner.lineNumber
        var hasEquals = false
        for i in comment where scanner.base[i] == UInt8(ascii: "=") { hasEquals = true; break }

        var entries: [KeyValueEntry] = []
        if hasEquals {
            do {
                entries = try KeyValueLine.parse(scanner, comment)
            } catch let e as KeyValueSyntaxError {
                throw error(commentLine, "comment line: \(e.message)")
            }
        }
        var propertiesText: String? = nil
        var lattice: [Double]? = nil
        var pbc: [Bool]? = nil
        var info: [String: [Double]] = [:]
        var textInfo: [String: String] = [:]
        var seenKeys = Set<String>()
        for entry in entries {
            // ASE keeps the last of two values for one key; which one the writer meant is unknowable.
            guard seenKeys.insert(entry.key).inserted else {
                throw error(commentLine, "the comment line gives '\(entry.key)' twice")
            }
            switch entry.key {
            case "Properties":
                propertiesText = entry.value
            case "Lattice":
                guard case .numbers(let v) = KeyValueValue(entry), v.count == 9 else {
                    throw error(commentLine, "Lattice must hold 9 numbers (rows a1 a2 a3), found \"\(entry.value)\"")
                }
                lattice = v
            case "pbc":
                guard case .booleans(let b) = KeyValueValue(entry), b.count == 3 else {
                    throw error(commentLine, "pbc must hold 3 booleans such as \"T T F\", found \"\(entry.value)\"")
                }
                pbc = b
            default:
                switch KeyValueValue(entry) {
                case .numbers(let v): info[entry.key] = v
                case .booleans(let b): textInfo[entry.key] = b.map { $0 ? "T" : "F" }.joined(separator: " ")
                case .text(let t): textInfo[entry.key] = t
                }
            }
        }
        if !hasEquals {
            let text = scanner.string(scanner.trimmed(comment))
            if !text.isEmpty { textInfo["comment"] = text }
        }

        // A plain or property-less frame is symbol + position with extra columns tolerated.
        let liberal = propertiesText == nil
        let columns = try parseProperties(propertiesText ?? "species:S:1:pos:R:3", line: commentLine)
        let totalWidth = columns.reduce(0) { $0 + $1.width }

        var symbols = [String](), numbers = [Int](), positions = [Vec3]()
        // The count is the file's claim: reserve no more than the bytes left could hold (an
        // atom line takes at least two), so that a corrupt count is an error, not an allocation.
        let plausible = min(atomCount, scanner.bytesLeft / 2 + 1)
        symbols.reserveCapacity(plausible); numbers.reserveCapacity(plausible); positions.reserveCapacity(plausible)
        var forces: [Vec3]? = nil, momenta: [Vec3]? = nil, velocities: [Vec3]? = nil, masses: [Double]? = nil
        var extras: [String: AtomArray] = [:]
        var symbolCache: [String: Int] = [:]
        var velocityScale = 1.0

        for column in columns {
            switch column.role {
            case .forces: forces = []; forces?.reserveCapacity(plausible)
            case .momenta: momenta = []; momenta?.reserveCapacity(plausible)
            case .aseVelocities: velocities = []; velocityScale = 1 / aseTimeUnitInFemtoseconds
            case .velocitiesPerFs: velocities = []
            case .masses: masses = []
            case .extra:
                let kind: AtomArray.Kind = column.type == "I" ? .integer : (column.type == "L" ? .logical : .real)
                extras[column.name] = AtomArray(kind: kind, width: column.width, values: [])
            default: break
            }
        }
        let hasSpecies = columns.contains { $0.role == .species }

        for atom in 0..<atomCount {
            guard let line = scanner.nextLine() else {
                throw error(scanner.lineNumber, "file ends after \(atom) of \(atomCount) atoms (truncated file?)")
            }
            let lineNumber = scanner.lineNumber
            scanner.tokenize(line)
            let tokens = scanner.tokens
            guard tokens.count == totalWidth || (liberal && tokens.count > totalWidth) else {
                throw error(lineNumber, "atom \(atom) has \(tokens.count) columns but \(propertiesText.map { "Properties=\($0)" } ?? "plain XYZ") needs \(totalWidth)")
            }
            func number(_ k: Int, _ column: Column) throws -> Double {
                guard let x = scanner.double(tokens[k]) else {
                    throw error(lineNumber, "atom \(atom), column '\(column.name)': '\(scanner.string(tokens[k]).prefix(40))' is not a number")
                }
                return x
            }
            func vector(_ column: Column) throws -> Vec3 {
                Vec3(try number(column.offset, column), try number(column.offset + 1, column), try number(column.offset + 2, column))
            }
            /// Positions and velocities start dynamics: a NaN there surfaced later as a
            /// "non-finite force on atom 0", whichever atom held it.
            func finiteVector(_ column: Column) throws -> Vec3 {
                let v = try vector(column)
                if let k = (0..<3).first(where: { !v[$0].isFinite }) {
                    throw error(lineNumber, "atom \(atom), column '\(column.name)': '\(scanner.string(tokens[column.offset + k]).prefix(40))' is not a finite number")
                }
                return v
            }
            for column in columns {
                switch column.role {
                case .species:
                    let symbol = scanner.string(tokens[column.offset])
                    let z: Int
                    if let cached = symbolCache[symbol] {
                        z = cached
                    } else {
                        guard let found = Elements.atomicNumber(of: symbol) else {
                            throw error(lineNumber, "atom \(atom): unknown element '\(symbol)'")
                        }
                        z = found
                        symbolCache[symbol] = found
                    }
                    symbols.append(Elements.symbol(of: z) ?? symbol)
                    numbers.append(z)
                case .atomicNumber:
                    guard let z = scanner.integer(tokens[column.offset]), Elements.symbol(of: z) != nil else {
                        throw error(lineNumber, "atom \(atom): '\(scanner.string(tokens[column.offset]))' is not a known atomic number (column Z)")
                    }
                    if !hasSpecies {
                        numbers.append(z)
                        symbols.append(Elements.symbol(of: z) ?? "X")
                    }
                case .positions: positions.append(try finiteVector(column))
                case .forces: forces?.append(try vector(column))
                case .momenta: momenta?.append(try finiteVector(column))
                case .aseVelocities, .velocitiesPerFs: velocities?.append(try finiteVector(column) * velocityScale)
                case .masses:
                    let m = try number(column.offset, column)
                    guard m > 0 else { throw error(lineNumber, "atom \(atom): mass \(m) is not positive") }
                    masses?.append(m)
                case .extra:
                    for k in 0..<column.width {
                        let token = tokens[column.offset + k]
                        let x: Double
                        switch column.type {
                        case "I":
                            guard let v = scanner.integer(token) else {
                                throw error(lineNumber, "atom \(atom), column '\(column.name)': '\(scanner.string(token))' is not an integer")
                            }
                            x = Double(v)
                        case "L":
                            guard let b = KeyValueValue.boolean(scanner.string(token)) else {
                                throw error(lineNumber, "atom \(atom), column '\(column.name)': '\(scanner.string(token))' is not T or F")
                            }
                            x = b ? 1 : 0
                        default:
                            x = try number(column.offset + k, column)
                        }
                        extras[column.name]?.values.append(x)
                    }
                case .skipped: break
                }
            }
        }

        if let momenta {
            let m = try masses ?? ExtendedXYZ.standardMasses(numbers, path: path)
            velocities = (0..<atomCount).map { momenta[$0] / (m[$0] * aseTimeUnitInFemtoseconds) }
        }
        var cell: Cell? = nil
        if let lattice {
            let matrix = Mat3(Vec3(lattice[0], lattice[1], lattice[2]), Vec3(lattice[3], lattice[4], lattice[5]),
                              Vec3(lattice[6], lattice[7], lattice[8]))
            let periodicity = pbc.map { Periodicity($0[0], $0[1], $0[2]) } ?? .all
            do {
                cell = try Cell(matrix: matrix, pbc: periodicity)
            } catch {
                throw self.error(commentLine, "Lattice: \(error)")
            }
        }
        return Structure(symbols: symbols, atomicNumbers: numbers, positions: positions, cell: cell,
                         velocities: velocities, forces: forces, masses: masses, info: info,
                         textInfo: textInfo, atomArrays: extras)
    }

    func parseProperties(_ text: String, line: Int) throws -> [Column] {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count % 3 == 0, !parts.isEmpty else {
            throw error(line, "Properties=\(text): expected name:type:count triples")
        }
        var columns: [Column] = []
        var offset = 0
        var seen = Set<Role>()
        for k in stride(from: 0, to: parts.count, by: 3) {
            let name = String(parts[k])
            let typeText = parts[k + 1].uppercased()
            guard typeText.count == 1, let type = typeText.first, "SRIL".contains(type) else {
                throw error(line, "Properties: column '\(name)' has type '\(parts[k + 1])', expected S, R, I or L")
            }
            // Bounded so that the columns' sum cannot overflow (a count of 2⁶³ − 6 trapped).
            guard let width = Int(parts[k + 2]), (1...1_000_000).contains(width) else {
                throw error(line, "Properties: column '\(name)' has count '\(parts[k + 2])', expected an integer from 1 to 1000000")
            }
            var role: Role
            var expected: (Character, Int)? = nil
            switch name {
            case "species": role = .species; expected = ("S", 1)
            case "pos", "positions": role = .positions; expected = ("R", 3)
            case "Z": role = .atomicNumber; expected = ("I", 1)
            case "forces", "force": role = .forces; expected = ("R", 3)
            case "momenta": role = .momenta; expected = ("R", 3)
            case "velocities": role = .aseVelocities; expected = ("R", 3)
            case "vel": role = .velocitiesPerFs; expected = ("R", 3)
            case "masses", "mass": role = .masses; expected = ("R", 1)
            default: role = type == "S" ? .skipped : .extra
            }
            if let (t, w) = expected, t != type || w != width {
                throw error(line, "Properties: column '\(name)' must be \(t):\(w), found \(type):\(width)")
            }
            if role != .extra && role != .skipped {
                let group: Role = role == .velocitiesPerFs ? .aseVelocities : role
                guard !seen.contains(group) else { throw error(line, "Properties: column '\(name)' given twice") }
                seen.insert(group)
            }
            if role == .momenta && seen.contains(.aseVelocities) || role == .aseVelocities && seen.contains(.momenta) {
                throw error(line, "Properties: both momenta and velocities given")
            }
            columns.append(Column(name: name, type: type, width: width, offset: offset, role: role))
            offset += width
        }
        guard seen.contains(.positions) else { throw error(line, "Properties=\(text) has no pos:R:3 column") }
        guard seen.contains(.species) || seen.contains(.atomicNumber) else {
            throw error(line, "Properties=\(text) has neither species:S:1 nor Z:I:1")
        }
        return columns
    }
}
