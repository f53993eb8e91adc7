import Geometry

/// Protein Data Bank files: `ATOM`/`HETATM` records, `CRYST1` for the cell, `MODEL`/`ENDMDL`
/// for several frames.
///
/// The element comes from columns 77–78 when present, otherwise from the atom name
/// (columns 13–16: a two-letter element starts in column 13, a one-letter one in column 14).
/// `CRYST1` lengths and angles become a periodic cell in the standard orientation (a along x,
/// b in the xy plane). Coordinates are Å.
public enum PDB {
    public static func read(path: String, frames: Range<Int>? = nil) throws -> [Structure] {
        try parse(TextBytes(path: path), frames: frames)
    }

    public static func read(text: String, path: String = "<text>", frames: Range<Int>? = nil) throws -> [Structure] {
        try parse(TextBytes(path: path, text: text), frames: frames)
    }

    static func parse(_ text: TextBytes, frames wanted: Range<Int>?) throws -> [Structure] {
        let path = text.path
        return try text.withScanner { scanner in
            var structures: [Structure] = []
            var cell: Cell? = nil
            var symbols: [String] = [], numbers: [Int] = [], positions: [Vec3] = []
            var frameIndex = 0
            var inModel = false

            func finishFrame() {
                if !positions.isEmpty && (wanted?.contains(frameIndex) ?? true) {
                    structures.append(Structure(symbols: symbols, atomicNumbers: numbers, positions: positions, cell: cell))
                }
                if !positions.isEmpty { frameIndex += 1 }
                symbols.removeAll(); numbers.removeAll(); positions.removeAll()
            }

            while let line = scanner.nextLine() {
                let lineNumber = scanner.lineNumber
                let record = field(scanner, line, 1, 6)
                switch record {
                case "ATOM", "HETATM":
                    func coordinate(_ from: Int, _ to: Int, _ axis: String) throws -> Double {
                        let t = field(scanner, line, from, to)
                        guard let x = Double(t) else {
                            throw TrajectoryError.at(path, line: lineNumber, frame: frameIndex,
                                                     "\(record) record: \(axis) coordinate (columns \(from)-\(to)) '\(t)' is not a number")
                        }
                        return x
                    }
                    let position = Vec3(try coordinate(31, 38, "x"), try coordinate(39, 46, "y"), try coordinate(47, 54, "z"))
                    let elementField = field(scanner, line, 77, 78)
                    let name = rawField(scanner, line, 13, 16)
                    let z: Int
                    if !elementField.isEmpty {
                        guard let found = Elements.atomicNumber(of: elementField) else {
                            throw TrajectoryError.at(path, line: lineNumber, frame: frameIndex,
                                                     "unknown element '\(elementField)' (columns 77-78)")
                        }
                        z = found
                    } else {
                        guard let found = elementFromAtomName(name) else {
                            throw TrajectoryError.at(path, line: lineNumber, frame: frameIndex,
                                                     "cannot tell the element of atom name '\(name.trimmingCharacters(in: .whitespaces))' (no element in columns 77-78)")
                        }
                        z = found
                    }
                    symbols.append(Elements.symbol(of: z) ?? "X")
                    numbers.append(z)
                    positions.append(position)
                case "CRYST1":
                    var values: [Double] = []
                    for (from, to) in [(7, 15), (16, 24), (25, 33), (34, 40), (41, 47), (48, 54)] {
                        let t = field(scanner, line, from, to)
                        guard let x = Double(t) else {
                            throw TrajectoryError.at(path, line: lineNumber, "CRYST1: columns \(from)-\(to) '\(t)' is not a number")
                        }
                        values.append(x)
                    }
                    // CRYST1 1 1 1 90 90 90 is the PDB placeholder for "no cell"; VMD and
                    // MDAnalysis write zero lengths for a system without a box.
                    if (values[0] == 1 && values[1] == 1 && values[2] == 1) || (values[0] == 0 && values[1] == 0 && values[2] == 0) {
                        cell = nil
                    } else {
                        do {
                            cell = try Cell.fromLengthsAndAngles(Vec3(values[0], values[1], values[2]),
                                                                 Vec3(values[3], values[4], values[5]))
                        } catch {
                            throw TrajectoryError.at(path, line: lineNumber, "CRYST1: \(error)")
                        }
                    }
                case "MODEL":
                    if !positions.isEmpty { finishFrame() }
                    inModel = true
                case "ENDMDL":
                    finishFrame()
                    inModel = false
                case "END":
                    if !inModel { finishFrame() }
                default:
                    break
                }
                if let wanted, structures.count >= wanted.count, frameIndex >= wanted.upperBound { break }
            }
            finishFrame()
            if structures.isEmpty && frameIndex == 0 {
                throw TrajectoryError("\(path): no ATOM or HETATM records")
            }
            return structures
        }
    }

    /// Columns `from...to` (1-based, inclusive) with blanks trimmed; shorter lines give "".
    static func field(_ scanner: TextScanner, _ line: Range<Int>, _ from: Int, _ to: Int) -> String {
        rawField(scanner, line, from, to).trimmingCharacters(in: .whitespaces)
    }

    static func rawField(_ scanner: TextScanner, _ line: Range<Int>, _ from: Int, _ to: Int) -> String {
        let lo = line.lowerBound + from - 1
        let hi = min(line.upperBound, line.lowerBound + to)
        guard lo < hi else { return "" }
        return scanner.string(lo..<hi)
    }

    /// The element of a PDB atom name (columns 13–16): two-letter elements are left-justified
    /// in column 13, one-letter ones start in column 14.
    static func elementFromAtomName(_ name: String) -> Int? {
        let chars = Array(name)
        let letters = { (s: ArraySlice<Character>) in String(s.filter { $0.isLetter }) }
        if let first = chars.first, first != " " && !first.isNumber, chars.count >= 2 {
            let two = letters(chars[0..<2])
            if two.count == 2, let z = Elements.atomicNumber(of: two) { return z }
        }
        let trimmed = chars.drop { $0 == " " || $0.isNumber }
        guard let letter = trimmed.first, letter.isLetter else { return nil }
        return Elements.atomicNumber(of: String(letter))
    }
}

import Foundation
