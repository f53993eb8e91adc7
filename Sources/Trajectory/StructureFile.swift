import Foundation
import Geometry

/// Text formats for structures.
public enum StructureFormat: String, Sendable, CaseIterable {
    /// ASE extended XYZ (also reads plain XYZ frames).
    case extendedXYZ = "extxyz"
    /// Plain XYZ: count, comment, `symbol x y z`.
    case xyz
    /// Protein Data Bank.
    case pdb

    /// The format a path's extension names: `.xyz` and `.extxyz` are read as extended XYZ
    /// (plain frames are recognised inside), `.pdb` / `.ent` as PDB. Nil for other extensions.
    public init?(path: String) {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "xyz", "extxyz": self = .extendedXYZ
        case "pdb", "ent": self = .pdb
        default: return nil
        }
    }
}

/// One entry point for structure files: the format follows the file's extension.
public enum StructureFile {
    /// Reads every frame (or the frames in `frames`) of a structure file.
    public static func read(path: String, frames: Range<Int>? = nil, format: StructureFormat? = nil) throws -> [Structure] {
        guard let format = format ?? StructureFormat(path: path) else {
            throw TrajectoryError("\(path): unknown structure format (use .xyz, .extxyz or .pdb)")
        }
        switch format {
        case .extendedXYZ, .xyz: return try ExtendedXYZ.read(path: path, frames: frames)
        case .pdb: return try PDB.read(path: path, frames: frames)
        }
    }

    /// Reads the first frame of a structure file.
    public static func readFirst(path: String, format: StructureFormat? = nil) throws -> Structure {
        guard let first = try read(path: path, frames: 0..<1, format: format).first else {
            throw TrajectoryError("\(path): no frames")
        }
        return first
    }

    /// Writes frames (atomically: temporary name, then rename). `.xyz` and `.extxyz` write
    /// extended XYZ, which plain XYZ readers also read (they ignore the comment line);
    /// pass `format: .xyz` for a bare comment line.
    public static func write(_ structures: [Structure], to path: String, format: StructureFormat? = nil) throws {
        guard let format = format ?? StructureFormat(path: path) else {
            throw TrajectoryError("\(path): unknown structure format (use .xyz, .extxyz or .pdb)")
        }
        switch format {
        case .extendedXYZ: try ExtendedXYZ.write(structures, to: path)
        case .xyz: try XYZ.write(structures, to: path)
        case .pdb: try PDB.write(structures, to: path)
        }
    }
}

/// Plain XYZ writing (reading goes through `ExtendedXYZ`, which recognises plain frames).
public enum XYZ {
    public static func read(path: String, frames: Range<Int>? = nil) throws -> [Structure] {
        try ExtendedXYZ.read(path: path, frames: frames)
    }

    /// Writes `symbol x y z` lines; the comment line is `textInfo["comment"]` or empty.
    public static func write(_ structures: [Structure], to path: String) throws {
        var out = ""
        for s in structures {
            guard s.symbols.count == s.count else { throw TrajectoryError("\(path): \(s.symbols.count) symbols for \(s.count) positions") }
            out += "\(s.count)\n"
            out += (s.textInfo["comment"] ?? "").replacingOccurrences(of: "\n", with: " ")
            out += "\n"
            for i in 0..<s.count {
                out += s.symbols[i]
                ExtendedXYZ.appendVector(s.positions[i], to: &out)
                out += "\n"
            }
        }
        try writeAtomically(out, to: path)
    }
}

extension PDB {
    /// Writes `HETATM` records (one `MODEL` per frame when there are several) with elements
    /// in columns 77–78 and, for periodic cells, a `CRYST1` record. PDB's fixed columns hold
    /// three decimals (coordinates between −999.999 and 9999.999 Å).
    public static func write(_ structures: [Structure], to path: String) throws {
        var out = ""
        for (k, s) in structures.enumerated() {
            guard s.symbols.count == s.count else { throw TrajectoryError("\(path): \(s.symbols.count) symbols for \(s.count) positions") }
            if structures.count > 1 { out += String(format: "MODEL     %4d\n", k + 1) }
            if let cell = s.cell {
                let l = cell.lengths, g = cell.anglesDegrees
                out += String(format: "CRYST1%9.3f%9.3f%9.3f%7.2f%7.2f%7.2f P 1           1\n", l.x, l.y, l.z, g.x, g.y, g.z)
            }
            for i in 0..<s.count {
                let r = s.positions[i]
                guard r.max() < 9999.9995, r.min() > -999.9995 else {
                    throw TrajectoryError("\(path): frame \(k), atom \(i): position \(r.plainDescription) does not fit PDB's columns")
                }
                let symbol = s.symbols[i]
                let name = symbol.count == 1 ? " \(symbol)  " : symbol.padding(toLength: 4, withPad: " ", startingAt: 0)
                let element = symbol.uppercased()
                out += String(format: "HETATM%5d ", (i + 1) % 100_000) + name + " MOL     1    "
                out += String(format: "%8.3f%8.3f%8.3f  1.00  0.00          ", r.x, r.y, r.z)
                out += (element.count == 1 ? " " : "") + element + "\n"
            }
            out += structures.count > 1 ? "ENDMDL\n" : ""
        }
        out += "END\n"
        try writeAtomically(out, to: path)
    }
}
