import Foundation

/// Detects truncated NetCDF-3 files, which libnetcdf opens without complaint (it reads the
/// missing bytes as zeros): parses the header (classic, 64-bit offset and CDF-5 layouts)
/// and compares the size it implies with the size on disk.
enum NetCDFHeaderCheck {
    /// Why the header could not be parsed: it runs past the end of the bytes given.
    struct OutOfData: Error {}
    struct Malformed: Error { let reason: String }
    /// The header's record count is the "streaming" marker: the count is unknown, and libnetcdf
    /// reports the marker itself (4,294,967,295 frames), which nothing should try to read.
    struct Streaming: Error {}

    /// Throws a `TrajectoryError` naming the file when it is shorter than its header says.
    /// `size` is the file's own (`stat`, which follows symbolic links: the size of a link
    /// itself made every linked trajectory "truncated").
    static func verify(path: String, size: Int) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        var length = min(size, 1 << 16)
        while true {
            try? handle.seek(toOffset: 0)
            let bytes = [UInt8](handle.readData(ofLength: length))
            do {
                let required = try requiredSize(bytes)
                if size < required {
                    throw TrajectoryError("\(path): file is \(size) bytes but its header describes \(required) bytes (truncated file?)")
                }
                return
            } catch is OutOfData {
                if length >= size {
                    throw TrajectoryError("\(path): the NetCDF header runs past the end of the file (truncated or damaged header)")
                }
                length = min(size, length * 4)
            } catch let e as Malformed {
                throw TrajectoryError("\(path): damaged NetCDF header (\(e.reason))")
            } catch is Streaming {
                throw TrajectoryError("\(path): the NetCDF header records no frame count (the 'streaming' marker); "
                    + "the file was cut off while being written, or streamed; this program reads only files whose header counts their frames")
            }
        }
    }

    /// The smallest file size holding every variable's data as the header describes it.
    static func requiredSize(_ bytes: [UInt8]) throws -> Int {
        var reader = BigEndianReader(bytes: bytes)
        guard bytes.count >= 4 else { throw OutOfData() }
        let version = bytes[3]
        let cdf5 = version == 5
        reader.offset = 4
        let wide = { (r: inout BigEndianReader) throws -> Int in cdf5 ? try r.int64() : try r.int32() }
        let numberOfRecords = try wide(&reader)
        if numberOfRecords == (cdf5 ? -1 : 0xFFFF_FFFF) { throw Streaming() }
        guard numberOfRecords >= 0 else { throw Malformed(reason: "record count \(numberOfRecords)") }

        // Dimensions
        var dimensionLengths: [Int] = []
        let dimTag = try reader.int32()
        let dimCount = try wide(&reader)
        guard dimTag == 0x0A || (dimTag == 0 && dimCount == 0) else { throw Malformed(reason: "dimension list tag \(dimTag)") }
        for _ in 0..<max(dimCount, 0) {
            try reader.skipName(cdf5: cdf5)
            dimensionLengths.append(try wide(&reader))
        }
        try skipAttributes(&reader, cdf5: cdf5)

        // Variables
        let varTag = try reader.int32()
        let varCount = try wide(&reader)
        guard varTag == 0x0B || (varTag == 0 && varCount == 0) else { throw Malformed(reason: "variable list tag \(varTag)") }
        struct Variable { var isRecord: Bool; var dataSize: Int; var begin: Int }
        var variables: [Variable] = []
        for _ in 0..<max(varCount, 0) {
            try reader.skipName(cdf5: cdf5)
            let rank = try wide(&reader)
            guard rank >= 0 && rank < 1024 else { throw Malformed(reason: "variable rank \(rank)") }
            var isRecord = false
            var elements = 1
            for k in 0..<rank {
                let id = try wide(&reader)
                guard id >= 0 && id < dimensionLengths.count else { throw Malformed(reason: "dimension id \(id)") }
                if k == 0 && dimensionLengths[id] == 0 { isRecord = true } else { elements = elements &* dimensionLengths[id] }
            }
            try skipAttributes(&reader, cdf5: cdf5)
            let type = try reader.int32()
            _ = try wide(&reader)  // vsize: recomputed below (it saturates for huge variables)
            let begin = version == 1 ? try reader.int32() : try reader.int64()
            variables.append(Variable(isRecord: isRecord, dataSize: elements &* typeSize(type), begin: begin))
        }
        let headerEnd = reader.offset
        let recordVariables = variables.filter(\.isRecord)
        // One record variable is stored unpadded; several are each padded to 4 bytes.
        let recordSize = recordVariables.count == 1 ? recordVariables[0].dataSize
            : recordVariables.reduce(0) { $0 + ($1.dataSize + 3) / 4 * 4 }
        var required = headerEnd
        for v in variables {
            if v.isRecord {
                if numberOfRecords > 0 { required = max(required, v.begin + (numberOfRecords - 1) * recordSize + v.dataSize) }
            } else {
                required = max(required, v.begin + v.dataSize)
            }
        }
        return required
    }

    static func typeSize(_ type: Int) -> Int {
        switch type {
        case 1, 2, 7: return 1
        case 3, 8: return 2
        case 4, 5, 9: return 4
        default: return 8
        }
    }

    static func skipAttributes(_ reader: inout BigEndianReader, cdf5: Bool) throws {
        let tag = try reader.int32()
        let count = cdf5 ? try reader.int64() : try reader.int32()
        guard tag == 0x0C || (tag == 0 && count == 0) else { throw Malformed(reason: "attribute list tag \(tag)") }
        for _ in 0..<max(count, 0) {
            try reader.skipName(cdf5: cdf5)
            let type = try reader.int32()
            let n = cdf5 ? try reader.int64() : try reader.int32()
            guard n >= 0 else { throw Malformed(reason: "attribute length \(n)") }
            try reader.skip((n * typeSize(type) + 3) / 4 * 4)
        }
    }
}

struct BigEndianReader {
    let bytes: [UInt8]
    var offset = 0

    mutating func int32() throws -> Int {
        guard offset + 4 <= bytes.count else { throw NetCDFHeaderCheck.OutOfData() }
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 8 | UInt32(bytes[offset + k]) }
        offset += 4
        return Int(v)
    }

    mutating func int64() throws -> Int {
        guard offset + 8 <= bytes.count else { throw NetCDFHeaderCheck.OutOfData() }
        var v: UInt64 = 0
        for k in 0..<8 { v = v << 8 | UInt64(bytes[offset + k]) }
        offset += 8
        return Int(truncatingIfNeeded: v)
    }

    mutating func skip(_ n: Int) throws {
        guard n >= 0, offset + n <= bytes.count else { throw NetCDFHeaderCheck.OutOfData() }
        offset += n
    }

    mutating func skipName(cdf5: Bool) throws {
        let length = cdf5 ? try int64() : try int32()
        guard length >= 0 && length < 1 << 20 else { throw NetCDFHeaderCheck.Malformed(reason: "name length \(length)") }
        try skip((length + 3) / 4 * 4)
    }
}
