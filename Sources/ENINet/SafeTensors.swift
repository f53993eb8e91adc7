import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The element types a safetensors file can hold.
///
/// The raw values are the strings the format's header uses.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case float64 = "F64", float32 = "F32", float16 = "F16", bfloat16 = "BF16"
    case int64 = "I64", int32 = "I32", int16 = "I16", int8 = "I8"
    case uint64 = "U64", uint32 = "U32", uint16 = "U16", uint8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .float64, .int64, .uint64: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// Whether the elements are floating point.
    public var isFloatingPoint: Bool {
        self == .float64 || self == .float32 || self == .float16 || self == .bfloat16
    }
}

/// A failure to read, interpret or write a model or tensor file; the message names the file
/// and, where it applies, the tensor or key.
public struct ModelFileError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One tensor of a safetensors file: its element type, shape and little-endian bytes.
public struct SafeTensor: Sendable {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// The raw little-endian element bytes, `elementCount * dtype.byteCount` of them.
    public let bytes: [UInt8]

    /// The number of elements: the product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    public init(name: String, dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// A tensor holding `values` as F64.
    public init(name: String, shape: [Int], float64 values: [Double]) {
        var bytes = [UInt8](); bytes.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        self.init(name: name, dtype: .float64, shape: shape, bytes: bytes)
    }

    /// A tensor holding `values` as F32.
    public init(name: String, shape: [Int], float32 values: [Float]) {
        var bytes = [UInt8](); bytes.reserveCapacity(values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        self.init(name: name, dtype: .float32, shape: shape, bytes: bytes)
    }

    /// A tensor holding `values` as I64.
    public init(name: String, shape: [Int], int64 values: [Int64]) {
        var bytes = [UInt8](); bytes.reserveCapacity(values.count * 8)
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
        self.init(name: name, dtype: .int64, shape: shape, bytes: bytes)
    }

    /// The elements converted to Double (exactly, for every type but 64-bit integers beyond 2^53).
    public func doubles() -> [Double] {
        let n = elementCount
        var out = [Double](repeating: 0, count: n)
        bytes.withUnsafeBytes { raw in
            switch dtype {
            case .float64: for k in 0..<n { out[k] = Double(bitPattern: raw.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self).littleEndian) }
            case .float32: for k in 0..<n { out[k] = Double(Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self).littleEndian)) }
            case .float16: for k in 0..<n { out[k] = Self.halfToDouble(raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self).littleEndian) }
            case .bfloat16:
                for k in 0..<n {
                    let b = UInt32(raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self).littleEndian) << 16
                    out[k] = Double(Float(bitPattern: b))
                }
            case .int64: for k in 0..<n { out[k] = Double(raw.loadUnaligned(fromByteOffset: 8 * k, as: Int64.self).littleEndian) }
            case .int32: for k in 0..<n { out[k] = Double(raw.loadUnaligned(fromByteOffset: 4 * k, as: Int32.self).littleEndian) }
            case .int16: for k in 0..<n { out[k] = Double(raw.loadUnaligned(fromByteOffset: 2 * k, as: Int16.self).littleEndian) }
            case .int8: for k in 0..<n { out[k] = Double(raw.load(fromByteOffset: k, as: Int8.self)) }
            case .uint64: for k in 0..<n { out[k] = Double(raw.loadUnaligned(fromByteOffset: 8 * k, as: UInt64.self).littleEndian) }
            case .uint32: for k in 0..<n { out[k] = Double(raw.loadUnaligned(fromByteOffset: 4 * k, as: UInt32.self).littleEndian) }
            case .uint16: for k in 0..<n { out[k] = Double(raw.loadUnaligned(fromByteOffset: 2 * k, as: UInt16.self).littleEndian) }
            case .uint8, .bool: for k in 0..<n { out[k] = Double(raw[k]) }
            }
        }
        return out
    }

    /// The elements as Float (rounded from F64).
    public func floats() -> [Float] { doubles().map { Float($0) } }

    /// The elements as integers; throws for floating-point tensors so that an index array
    /// stored with the wrong type is not silently truncated.
    public func integers(file: String = "") throws -> [Int] {
        guard !dtype.isFloatingPoint else {
            throw ModelFileError("\(file.isEmpty ? "" : file + ": ")tensor '\(name)' has type \(dtype.rawValue), expected an integer type")
        }
        if dtype == .int64 {
            let n = elementCount
            return bytes.withUnsafeBytes { raw in
                (0..<n).map { Int(raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self).littleEndian) }
            }
        }
        return doubles().map { Int($0) }
    }

    private static func halfToDouble(_ h: UInt16) -> Double {
        let sign: Double = (h & 0x8000) != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1f)
        let mantissa = Double(h & 0x3ff)
        switch exponent {
        case 0: return sign * mantissa * 0x1p-24
        case 31: return mantissa == 0 ? sign * .infinity : .nan
        default: return sign * (1 + mantissa / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}

/// A safetensors file in memory: named tensors and the optional `__metadata__` string map.
///
/// The format is an 8-byte little-endian header length `n`, `n` bytes of JSON mapping each
/// tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the
/// end of the header), then the concatenated little-endian data.
public struct SafeTensorsFile: Sendable {
    /// Where the file was read from (empty for one built in memory); used in error messages.
    public var path: String
    public private(set) var tensors: [String: SafeTensor]
    public var metadata: [String: String]

    public init(path: String = "", tensors: [SafeTensor] = [], metadata: [String: String] = [:]) {
        self.path = path
        self.tensors = [:]
        for t in tensors { self.tensors[t.name] = t }
        self.metadata = metadata
    }

    /// Names of all tensors, sorted.
    public var names: [String] { tensors.keys.sorted() }

    public mutating func add(_ tensor: SafeTensor) { tensors[tensor.name] = tensor }

    /// Reads and validates the file at `path`.
    public init(contentsOf path: String) throws {
        // Foundation says only "NSCocoaErrorDomain error 256" for a directory.
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ModelFileError("\(path): is a directory, not a model file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelFileError("\(path): cannot read file (\(error.localizedDescription))")
        }
        try self.init(bytes: [UInt8](data), path: path)
    }

    /// Parses an in-memory image of a safetensors file.
    public init(bytes: [UInt8], path: String = "<memory>") throws {
        self.path = path
        guard bytes.count >= 8 else {
            throw ModelFileError("\(path): not a safetensors file (only \(bytes.count) bytes, the header length alone needs 8)")
        }
        var headerLength: UInt64 = 0
        for k in 0..<8 { headerLength |= UInt64(bytes[k]) << (8 * UInt64(k)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw ModelFileError("\(path): corrupt safetensors header: header length \(headerLength) exceeds the \(bytes.count - 8) bytes after it")
        }
        let dataStart = 8 + Int(headerLength)
        let headerObject: Any
        do {
            headerObject = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        } catch {
            throw ModelFileError("\(path): corrupt safetensors header: not valid JSON (\(error.localizedDescription))")
        }
        guard let header = headerObject as? [String: Any] else {
            throw ModelFileError("\(path): corrupt safetensors header: the JSON is not an object")
        }
        let dataCount = bytes.count - dataStart
        var metadata: [String: String] = [:]
        var tensors: [String: SafeTensor] = [:]
        var spans: [(begin: Int, end: Int, name: String)] = []
        for (name, value) in header {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw ModelFileError("\(path): corrupt safetensors header: __metadata__ is not an object")
                }
                for (k, v) in map {
                    guard let s = v as? String else {
                        throw ModelFileError("\(path): corrupt safetensors header: __metadata__ key '\(k)' is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value as? [String: Any] else {
                throw ModelFileError("\(path): corrupt safetensors header: entry for tensor '\(name)' is not an object")
            }
            guard let dtypeName = entry["dtype"] as? String else {
                throw ModelFileError("\(path): corrupt safetensors header: tensor '\(name)' has no dtype")
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw ModelFileError("\(path): tensor '\(name)' has unsupported dtype '\(dtypeName)'")
            }
            guard let shapeAny = entry["shape"] as? [Any], let shape = Self.integerArray(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
                throw ModelFileError("\(path): corrupt safetensors header: tensor '\(name)' has no valid shape")
            }
            guard let offsetsAny = entry["data_offsets"] as? [Any], let offsets = Self.integerArray(offsetsAny), offsets.count == 2 else {
                throw ModelFileError("\(path): corrupt safetensors header: tensor '\(name)' has no valid data_offsets")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin else {
                throw ModelFileError("\(path): corrupt safetensors header: tensor '\(name)' has data_offsets [\(begin), \(end)]")
            }
            guard end <= dataCount else {
                throw ModelFileError("\(path): truncated data: tensor '\(name)' ends at byte \(end) of the data section but only \(dataCount) bytes follow the header")
            }
            var count = 1
            for s in shape {
                let (p, overflow) = count.multipliedReportingOverflow(by: s)
                guard !overflow else { throw ModelFileError("\(path): tensor '\(name)' has an absurd shape \(shape)") }
                count = p
            }
            guard end - begin == count * dtype.byteCount else {
                throw ModelFileError("\(path): tensor '\(name)' of shape \(shape) and type \(dtypeName) needs \(count * dtype.byteCount) bytes but its data_offsets span \(end - begin)")
            }
            tensors[name] = SafeTensor(name: name, dtype: dtype, shape: shape,
                                       bytes: Array(bytes[(dataStart + begin)..<(dataStart + end)]))
            spans.append((begin, end, name))
        }
        // The format's rule, as the Python package checks it: the tensors' bytes tile the data
        // section, with no overlap, gap or tail. A tensor pointed at another's bytes loaded and
        // gave an energy 3 eV off.
        var covered = 0
        for span in spans.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard span.begin == covered else {
                throw ModelFileError("\(path): corrupt safetensors header: tensor '\(span.name)' starts at byte \(span.begin) of the data, "
                                     + (span.begin < covered ? "inside another tensor" : "leaving \(span.begin - covered) bytes before it unused"))
            }
            covered = span.end
        }
        guard covered == dataCount else {
            throw ModelFileError("\(path): corrupt safetensors file: \(dataCount - covered) bytes after the last tensor's data")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    private static func integerArray(_ values: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in values {
            if let n = v as? NSNumber {
                let d = n.doubleValue
                guard d == d.rounded(), abs(d) < 9e15 else { return nil }
                out.append(n.intValue)
            } else { return nil }
        }
        return out
    }

    /// The tensor called `name`; throws an error naming the file when it is absent.
    public func tensor(_ name: String) throws -> SafeTensor {
        guard let t = tensors[name] else {
            throw ModelFileError("\(path): missing tensor '\(name)'")
        }
        return t
    }

    /// The tensor called `name` as Doubles, checking its shape (pass nil to accept any) and that
    /// every element is finite: a NaN or infinite weight would otherwise surface only as a NaN
    /// energy, far from its cause.
    public func doubles(_ name: String, shape: [Int]? = nil) throws -> [Double] {
        let t = try tensor(name)
        if let shape = shape, shape != t.shape {
            throw ModelFileError("\(path): tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return try finite(t)
    }

    /// `tensor.doubles()`, or an error naming the tensor and the first non-finite element.
    public func finite(_ tensor: SafeTensor) throws -> [Double] {
        let values = tensor.doubles()
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw ModelFileError("\(path): tensor '\(tensor.name)' holds \(values[bad]) at element \(bad) (of shape \(tensor.shape))")
        }
        return values
    }

    /// The tensor called `name` as integers, checking its shape (pass nil to accept any).
    public func integers(_ name: String, shape: [Int]? = nil) throws -> [Int] {
        let t = try tensor(name)
        if let shape = shape, shape != t.shape {
            throw ModelFileError("\(path): tensor '\(name)' has shape \(t.shape), expected \(shape)")
        }
        return try t.integers(file: path)
    }

    /// The file image: header (sorted names, padded with spaces to a multiple of 8 bytes) and data.
    public func serialized() throws -> [UInt8] {
        var header: [String: Any] = [:]
        var offset = 0
        let ordered = tensors.values.sorted { $0.name < $1.name }
        for t in ordered {
            let name = t.name
            guard t.bytes.count == t.elementCount * t.dtype.byteCount else {
                throw ModelFileError("\(path): tensor '\(name)' of shape \(t.shape) holds \(t.bytes.count) bytes, expected \(t.elementCount * t.dtype.byteCount)")
            }
            header[name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]] as [String: Any]
            offset += t.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }
        var out = [UInt8](); out.reserveCapacity(8 + json.count + offset)
        let n = UInt64(json.count)
        for k in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(k)))) }
        out.append(contentsOf: json)
        for t in ordered { out.append(contentsOf: t.bytes) }
        return out
    }

    /// Writes the file to a temporary name beside `path` and renames it, so that a failure
    /// never leaves a half-written model file.
    public func write(to path: String) throws {
        let image = try serialized()
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try Data(image).write(to: temporary, options: .atomic)
            // rename(2) replaces an existing file atomically; Foundation's replaceItemAt fails
            // on Linux when the target exists and can leave no file at all.
            guard rename(temporary.path, path) == 0 else {
                throw ModelFileError("\(path): cannot rename the temporary file into place (errno \(errno))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw ModelFileError("\(path): cannot write file (\(error.localizedDescription))")
        }
    }
}
