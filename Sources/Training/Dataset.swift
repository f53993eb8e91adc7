import Foundation
import Geometry

/// A failure a user can cause in training: a bad dataset frame, a bad setting, an unreadable
/// checkpoint. The message names the file and the frame, line or key.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One labelled structure: what a quantum-chemistry code computed for a geometry.
public struct TrainingFrame: Sendable {
    public var atomicNumbers: [Int]
    public var positions: [Vec3]
    public var cell: Cell?
    /// Total energy (eV).
    public var energy: Double
    /// `−∂E/∂r_i` (eV/Å).
    public var forces: [Vec3]
    /// Dipole moment (e·Å), when the file has one.
    public var dipole: Vec3?
    /// Stress (eV/Å³, ASE's sign: `(1/V) ∂E/∂ε`, negative under compression; symmetric),
    /// when the file has one; only for a cell periodic along every axis.
    public var stress: Mat3?
    /// The frame's index in its file (for messages).
    public var index: Int

    public init(atomicNumbers: [Int], positions: [Vec3], cell: Cell? = nil, energy: Double, forces: [Vec3],
                dipole: Vec3? = nil, stress: Mat3? = nil, index: Int = 0) {
        self.atomicNumbers = atomicNumbers
        self.positions = positions
        self.cell = cell
        self.energy = energy
        self.forces = forces
        self.dipole = dipole
        self.stress = stress
        self.index = index
    }

    public var atomCount: Int { positions.count }

    /// The stress with the volume it is a derivative per: what the loss, its shares and the
    /// metrics count as a stress label (nil without a cell periodic along every axis).
    public var labelledStress: (stress: Mat3, volume: Double)? {
        guard let stress, let cell, cell.pbc == .all else { return nil }
        return (stress, cell.volume)
    }

    /// Throws, naming `source` and the frame, unless every number is finite, every element
    /// known and the arrays agree in length.
    public func validate(source: String, line: Int? = nil) throws {
        func bad(_ what: String) -> TrainingError { TrainingError("\(source): frame \(index)\(line.map { " (line \($0))" } ?? ""): \(what)") }
        guard atomCount > 0 else { throw bad("no atoms") }
        guard atomicNumbers.count == atomCount else { throw bad("\(atomicNumbers.count) elements for \(atomCount) positions") }
        guard forces.count == atomCount else { throw bad("\(forces.count) forces for \(atomCount) atoms") }
        for (i, z) in atomicNumbers.enumerated() where z < 1 || Elements.symbol(of: z) == nil {
            throw bad("atom \(i): unknown element Z = \(z)")
        }
        guard energy.isFinite else { throw bad("energy is \(energy)") }
        // Finite is not enough: an energy of 1e308 eV squares to infinity in the loss. The bounds
        // lie far beyond chemistry (an all-electron lead atom is about -6e5 eV), so a value past
        // them is a unit or typing mistake.
        let bound = 1e7
        guard abs(energy) <= bound * Double(atomCount) else {
            throw bad("energy \(energy) eV is beyond \(bound) eV per atom (wrong units or a typing mistake?)")
        }
        for i in 0..<atomCount {
            let r = positions[i], f = forces[i]
            guard r.isFinite else { throw bad("atom \(i): non-finite position") }
            guard f.isFinite else { throw bad("atom \(i): non-finite force") }
            guard max(abs(r.x), abs(r.y), abs(r.z)) <= bound else { throw bad("atom \(i): a position coordinate beyond \(bound) Å") }
            guard max(abs(f.x), abs(f.y), abs(f.z)) <= bound else { throw bad("atom \(i): a force component beyond \(bound) eV/Å") }
        }
        if let d = dipole {
            guard d.isFinite else { throw bad("non-finite dipole") }
            guard max(abs(d.x), abs(d.y), abs(d.z)) <= bound else { throw bad("a dipole component beyond \(bound) e·Å") }
        }
        if let s = stress {
            // A stress is a derivative per volume: a molecule or a slab has no volume to divide
            // by, and the reader drops theirs.
            guard let cell, cell.pbc == .all else {
                throw bad("a stress, but no cell periodic along every axis (a Lattice with pbc=\"T T T\")")
            }
            let values = [s[0], s[1], s[2]].flatMap { [$0.x, $0.y, $0.z] }
            guard values.allSatisfy({ $0.isFinite }) else { throw bad("non-finite stress") }
            // 1e4 eV/Å³ is 1.6 PPa; a file past it holds another unit (bar, GPa times 1e9, ...).
            guard values.allSatisfy({ abs($0) <= 1e4 }) else { throw bad("a stress component beyond 1e4 eV/Å³ (the unit is eV/Å³)") }
        }
    }
}

/// Reads training data in the extended-XYZ layout ASE writes: a count line, a comment line of
/// `key=value` pairs (`Properties=species:S:1:pos:R:3:forces:R:3 energy=... dipole="x y z"
/// Lattice="..." pbc="T T T"`), then one line per atom.
public enum ExtendedXYZDataset {
    /// Every frame of the file at `path`, checked.
    public static func read(path: String) throws -> [TrainingFrame] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw TrainingError("\(path): cannot read (\(error.localizedDescription))")
        }
        return try parse(text, source: path)
    }

    /// Every frame of `text`; `source` names it in errors.
    public static func parse(_ text: String, source: String) throws -> [TrainingFrame] {
        // Swift reads "\r\n" as one Character, which a split on "\n" alone would never cut.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        var frames: [TrainingFrame] = []
        var l = 0
        while l < lines.count {
            if lines[l].allSatisfy({ $0 == " " || $0 == "\t" }) { l += 1; continue }
            let index = frames.count
            let countLine = l
            func bad(_ what: String) -> TrainingError { TrainingError("\(source): frame \(index) (line \(countLine + 1)): \(what)") }
            guard let n = Int(lines[l].trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw bad("expected an atom count, found '\(lines[l].prefix(40))'")
            }
            guard l + 1 < lines.count else { throw bad("the file ends before the comment line") }
            let info = try keyValues(String(lines[l + 1]), bad: bad)
            let properties = try propertyColumns(info["properties"] ?? "species:S:1:pos:R:3", bad: bad)
            guard let species = properties["species"], let pos = properties["pos"] else { throw bad("Properties lacks species or pos") }
            // REF_energy and REF_forces are how MACE-style datasets keep reference labels apart
            // from a calculator's: taken when the plain names are absent.
            guard let forceColumn = properties["forces"] ?? properties["force"] ?? properties["ref_forces"] else {
                throw bad("no forces (Properties has no 'forces' or 'REF_forces' column)")
            }
            guard let energyText = info["energy"] ?? info["free_energy"] ?? info["ref_energy"] else {
                throw bad("no energy in the comment line (energy=, free_energy= or REF_energy=)")
            }
            guard let energy = Double(energyText) else { throw bad("energy '\(energyText)' is not a number") }
            var dipole: Vec3? = nil
            if let d = info["dipole"] ?? info["ref_dipole"] {
                let v = try vector(d, count: 3, key: "dipole", bad: bad)
                dipole = Vec3(v[0], v[1], v[2])
            }
            // A stress, or a virial W = −Vσ as GAP and libAtoms files give it (eV).
            var tensor: (key: String, value: Mat3)? = nil
            if let key = ["stress", "ref_stress", "virial", "ref_virial"].first(where: { info[$0] != nil }), let text = info[key] {
                let name = key.hasPrefix("ref_") ? "REF_" + key.dropFirst(4) : key
                let v = try numbers(text, key: name, bad: bad)
                let value: Mat3
                switch v.count {
                // ASE lays nine out column by column (as it does the transpose of a Lattice);
                // the symmetric part, all that the stress of an energy that turns with the
                // structure has, is the same in either order.
                case 9:
                    let m = Mat3(Vec3(v[0], v[1], v[2]), Vec3(v[3], v[4], v[5]), Vec3(v[6], v[7], v[8]))
                    value = 0.5 * (m + m.transposed)
                case 6: value = Mat3(aseVoigt: v)
                default: throw bad("\(name) has \(v.count) numbers (9, or 6 in Voigt order xx yy zz yz xz xy)")
                }
                guard v.allSatisfy({ $0.isFinite }) else { throw bad("non-finite \(name)") }
                tensor = (name, value)
            }
            var cell: Cell? = nil
            // Checked with or without a Lattice, as the structure reader checks it.
            var periodic = Periodicity.all
            if let p = info["pbc"] {
                // T/F as ASE writes them (and True/False); anything else is not silently "false".
                let flags = try p.split(separator: " ").map { flag -> Bool in
                    switch flag.uppercased() {
                    case "T", "TRUE": return true
                    case "F", "FALSE": return false
                    default: throw bad("pbc '\(p)': '\(flag)' is not T or F")
                    }
                }
                guard flags.count == 3 else { throw bad("pbc '\(p)' needs three flags") }
                periodic = Periodicity(flags[0], flags[1], flags[2])
            }
            if let lattice = info["lattice"] {
                let v = try vector(lattice, count: 9, key: "Lattice", bad: bad)
                do {
                    cell = try Cell(matrix: Mat3(Vec3(v[0], v[1], v[2]), Vec3(v[3], v[4], v[5]), Vec3(v[6], v[7], v[8])), pbc: periodic)
                } catch { throw bad("Lattice: \(error)") }
            }
            let columns = properties.values.map { $0.upperBound }.max() ?? 0
            var z: [Int] = [], r: [Vec3] = [], f: [Vec3] = []
            // The count is the file's claim: reserve no more than the lines left could hold.
            let plausible = min(n, lines.count - l)
            z.reserveCapacity(plausible); r.reserveCapacity(plausible); f.reserveCapacity(plausible)
            for a in 0..<n {
                let lineNumber = l + 2 + a
                guard lineNumber < lines.count else { throw bad("the file ends after \(a) of \(n) atom lines") }
                let fields = lines[lineNumber].split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard !fields.isEmpty else { throw bad("only \(a) of \(n) atom lines (line \(lineNumber + 1) is blank)") }
                guard fields.count == columns else {
                    throw bad("atom \(a) (line \(lineNumber + 1)) has \(fields.count) columns, Properties needs \(columns)")
                }
                let symbol = String(fields[species.lowerBound])
                guard let number = Elements.atomicNumber(of: symbol) else { throw bad("atom \(a) (line \(lineNumber + 1)): unknown element '\(symbol)'") }
                func numbers(_ range: Range<Int>, _ what: String) throws -> Vec3 {
                    var v = Vec3.zero
                    for (c, k) in range.enumerated() {
                        guard let x = Double(fields[k]) else { throw bad("atom \(a) (line \(lineNumber + 1)): \(what) '\(fields[k])' is not a number") }
                        v[c] = x
                    }
                    return v
                }
                z.append(number)
                r.append(try numbers(pos, "position"))
                f.append(try numbers(forceColumn, "force"))
            }
            // Only a cell periodic along every axis has a volume for a stress: a slab's or a
            // molecule's label is dropped (a file of mixed frames loads; a stress weight then
            // needs some periodic frame with one).
            var stress: Mat3? = nil
            if let tensor, let cell, cell.pbc == .all {
                stress = tensor.key.hasSuffix("virial") ? (-1 / cell.volume) * tensor.value : tensor.value
            }
            let frame = TrainingFrame(atomicNumbers: z, positions: r, cell: cell, energy: energy, forces: f, dipole: dipole,
                                      stress: stress, index: index)
            try frame.validate(source: source, line: countLine + 1)
            frames.append(frame)
            l += 2 + n
        }
        guard !frames.isEmpty else { throw TrainingError("\(source): no frames (empty file)") }
        return frames
    }

    /// `key=value` pairs of a comment line (keys lower-cased; values may be double-quoted).
    static func keyValues(_ line: String, bad: (String) -> TrainingError) throws -> [String: String] {
        var out: [String: String] = [:]
        var chars = Substring(line)
        while true {
            chars = chars.drop(while: { $0 == " " || $0 == "\t" })
            guard !chars.isEmpty else { break }
            let key = chars.prefix(while: { $0 != "=" && $0 != " " && $0 != "\t" })
            chars = chars.dropFirst(key.count)
            var value = ""
            if chars.first == "=" {
                chars = chars.dropFirst()
                if chars.first == "\"" {
                    chars = chars.dropFirst()
                    guard let end = chars.firstIndex(of: "\"") else { throw bad("unterminated quote after '\(key)='") }
                    value = String(chars[..<end])
                    chars = chars[chars.index(after: end)...]
                } else {
                    let v = chars.prefix(while: { $0 != " " && $0 != "\t" })
                    value = String(v)
                    chars = chars.dropFirst(v.count)
                }
            }
            // Two values for one key (keys are read case-blind) would leave one of them unread.
            guard out.updateValue(value, forKey: key.lowercased()) == nil else {
                throw bad("the comment line gives '\(key)' twice (keys are read without regard to case)")
            }
        }
        return out
    }

    /// Column ranges of each property of an ASE `Properties` string.
    static func propertyColumns(_ spec: String, bad: (String) -> TrainingError) throws -> [String: Range<Int>] {
        let parts = spec.split(separator: ":")
        guard parts.count % 3 == 0, !parts.isEmpty else { throw bad("malformed Properties '\(spec)'") }
        var out: [String: Range<Int>] = [:]
        var column = 0
        for k in stride(from: 0, to: parts.count, by: 3) {
            // Bounded so that the columns' sum cannot overflow (a count of 2⁶³ − 6 trapped).
            guard let width = Int(parts[k + 2]), (1...1_000_000).contains(width) else { throw bad("malformed Properties '\(spec)'") }
            guard out.updateValue(column..<(column + width), forKey: parts[k].lowercased()) == nil else {
                throw bad("Properties names '\(parts[k])' twice")
            }
            column += width
        }
        if let p = out["pos"], p.count != 3 { throw bad("pos must have 3 columns") }
        for key in ["forces", "force", "ref_forces"] { if let f = out[key], f.count != 3 { throw bad("\(key) must have 3 columns") } }
        return out
    }

    static func vector(_ text: String, count: Int, key: String, bad: (String) -> TrainingError) throws -> [Double] {
        let v = text.split(whereSeparator: { $0 == " " || $0 == "," }).compactMap { Double($0) }
        guard v.count == count, text.split(whereSeparator: { $0 == " " || $0 == "," }).count == count else {
            throw bad("\(key) '\(text)' is not \(count) numbers")
        }
        return v
    }

    /// The numbers of a value whose length the caller checks; one field that is no number is an error.
    static func numbers(_ text: String, key: String, bad: (String) -> TrainingError) throws -> [Double] {
        try text.split(whereSeparator: { $0 == " " || $0 == "," }).map { field in
            guard let x = Double(field) else { throw bad("\(key): '\(field)' is not a number") }
            return x
        }
    }
}

/// Which frames train, validate and test.
public struct DatasetSplit: Equatable, Sendable {
    public var train: [Int]
    public var validation: [Int]
    public var test: [Int]

    public init(train: [Int], validation: [Int], test: [Int]) {
        self.train = train
        self.validation = validation
        self.test = test
    }

    /// A seeded random split; each size is a count (≥ 1) or a fraction (< 1) of `frameCount`.
    /// A nil test size takes the frames left over.
    public static func random(frameCount: Int, train: Double, validation: Double, test: Double?, seed: UInt64) throws -> DatasetSplit {
        func size(_ x: Double, _ key: String) throws -> Int {
            guard x >= 0, x.isFinite, x < 1 || x == x.rounded() else {
                throw TrainingError("data.\(key) = \(x) must be a whole count or a fraction in [0, 1)")
            }
            return x < 1 ? Int((x * Double(frameCount)).rounded()) : Int(x)
        }
        let nTrain = try size(train, "train")
        var nValid = try size(validation, "validation")
        var nTest = try test.map { try size($0, "test") } ?? max(0, frameCount - nTrain - nValid)
        // Fractions that sum to at most one may still round to one frame too many each
        // (0.8, 0.1, 0.1 of 25 frames: 20 + 3 + 3): the frames go back from test, then validation.
        let asked = [train, validation, test ?? 0].reduce(0) { $0 + ($1 < 1 ? $1 * Double(frameCount) : $1) }
        var overshoot = nTrain + nValid + nTest - frameCount
        if overshoot > 0, asked <= Double(frameCount) + 1e-9 {
            let fromTest = min(overshoot, nTest)
            nTest -= fromTest
            overshoot -= fromTest
            nValid -= min(overshoot, nValid)
        }
        guard nTrain >= 1 else { throw TrainingError("data.train: no training frames") }
        guard nTrain + nValid + nTest <= frameCount else {
            throw TrainingError("data: train + validation + test = \(nTrain + nValid + nTest) frames, but the file has \(frameCount)")
        }
        var generator = SplitMix64(seed: seed)
        var order = Array(0..<frameCount)
        generator.shuffle(&order)
        return DatasetSplit(train: Array(order[0..<nTrain]).sorted(),
                            validation: Array(order[nTrain..<(nTrain + nValid)]).sorted(),
                            test: Array(order[(nTrain + nValid)..<(nTrain + nValid + nTest)]).sorted())
    }

    /// A split from a JSON file with arrays `train`, `valid` (or `validation`) and `test` of
    /// 0-based frame indices, checked against `frameCount`.
    public static func read(path: String, frameCount: Int) throws -> DatasetSplit {
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw TrainingError("\(path): cannot read the split (\(error.localizedDescription))")
        }
        guard let dict = object as? [String: Any] else { throw TrainingError("\(path): the split is not a JSON object") }
        // Other keys may describe the split (`recipe`), but a list under another name is a
        // misspelt part ("tset") whose frames would silently go unused.
        let known: Set = ["train", "valid", "validation", "test"]
        if dict["valid"] != nil && dict["validation"] != nil {
            throw TrainingError("\(path): both 'valid' and 'validation' are given; keep one")
        }
        if let unknown = dict.keys.sorted().first(where: { !known.contains($0) && dict[$0] is [Any] }) {
            throw TrainingError("\(path): unknown key '\(unknown)' holds a list (a split's lists are train, valid or validation, and test)")
        }
        func indices(_ keys: [String], required: Bool) throws -> [Int] {
            guard let key = keys.first(where: { dict[$0] != nil }) else {
                if required { throw TrainingError("\(path): missing key '\(keys[0])'") }
                return []
            }
            guard let values = dict[key] as? [Any] else { throw TrainingError("\(path): key '\(key)' is not an array") }
            return try values.enumerated().map { k, v in
                // JSON's true arrives as an NSNumber of type "c" and would read as index 1.
                guard let n = v as? NSNumber, String(cString: n.objCType) != "c",
                      let i = Int(exactly: n.doubleValue), i >= 0, i < frameCount else {
                    throw TrainingError("\(path): \(key)[\(k)] = \(v) is not a frame index in 0..<\(frameCount)")
                }
                return i
            }
        }
        let split = DatasetSplit(train: try indices(["train"], required: true), validation: try indices(["valid", "validation"], required: true),
                                 test: try indices(["test"], required: false))
        // A frame in two parts would score the model on what it trained on.
        var part = [Int: String]()
        for (name, list) in [("train", split.train), ("validation", split.validation), ("test", split.test)] {
            for i in list {
                if let earlier = part[i] {
                    throw TrainingError("\(path): frame \(i) is listed " + (earlier == name ? "twice in \(name)" : "in both \(earlier) and \(name)"))
                }
                part[i] = name
            }
        }
        return split
    }
}

/// SplitMix64 (Steele, Lea & Flood): a generator whose whole state is one integer, so that a
/// checkpoint can store it and a resumed run draws the same numbers.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Fisher–Yates with this generator (the standard library's shuffle may change between releases).
    public mutating func shuffle<E>(_ array: inout [E]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = Int(next() % UInt64(i + 1))
            array.swapAt(i, j)
        }
    }
}
