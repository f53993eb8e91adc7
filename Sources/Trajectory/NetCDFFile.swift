import CNetCDF
import Foundation
import Geometry

/// Names, unit strings and constants of the AMBER NetCDF convention (version 1.0), spelled
/// exactly as readers compare them.
public enum AmberNetCDF {
    public static let trajectoryConventions = "AMBER"
    public static let restartConventions = "AMBERRESTART"
    public static let conventionVersion = "1.0"
    public static let program = "ENINetMD"
    public static let programVersion = "0.1.0"

    public static let timeUnits = "picosecond"
    public static let lengthUnits = "angstrom"
    public static let velocityUnits = "angstrom/picosecond"
    public static let forceUnits = "kilocalorie/mole/angstrom"
    public static let angleUnits = "degree"

    /// Velocities in Å/fs → Å/ps.
    public static let velocityToFile = Units.femtosecondsPerPicosecond
    /// AMBER's velocity unit is Å per 1/20.455 ps: its restarts store velocities in that unit
    /// with this `scale_factor`. sander and pmemd read the stored numbers as they are and ParmEd
    /// requires the attribute, so a restart for them must be written the same way.
    public static let velocityScaleFactor = 20.455
    /// Forces in eV/Å → kcal/mol/Å.
    public static let forceToFile = Units.kcalPerMolPerEV

    /// The value libnetcdf stores in float variables nobody wrote (frames that carry no
    /// velocities or forces in a file that has the variable).
    public static let floatFill: Float = NC_FILL_FLOAT
    public static let doubleFill: Double = NC_FILL_DOUBLE

    /// Variables of the convention; anything else with a `frame` dimension is an extra.
    public static let standardVariables: Set<String> = [
        "spatial", "cell_spatial", "cell_angular", "time", "coordinates", "velocities", "forces",
        "cell_lengths", "cell_angles",
    ]
}

/// A NetCDF dataset handle that reports failures as `TrajectoryError`s naming the file.
final class NetCDFFile {
    let path: String
    private(set) var ncid: Int32 = -1
    private(set) var isOpen = false

    private init(path: String, ncid: Int32) {
        self.path = path
        self.ncid = ncid
        self.isOpen = true
    }

    deinit { if isOpen { nc_close(ncid) } }

    static func message(_ status: Int32) -> String { String(cString: nc_strerror(status)) }

    func check(_ status: Int32, _ what: @autoclosure () -> String) throws {
        guard status == NC_NOERR else { throw TrajectoryError("\(path): \(what()): \(NetCDFFile.message(status))") }
    }

    /// Creates a NetCDF-3 64-bit offset file (replacing any file at `path`), in define mode.
    static func create(path: String) throws -> NetCDFFile {
        var id: Int32 = -1
        let status = nc_create(path, NC_CLOBBER | NC_64BIT_OFFSET, &id)
        guard status == NC_NOERR else { throw TrajectoryError("\(path): cannot create NetCDF file: \(message(status))") }
        let file = NetCDFFile(path: path, ncid: id)
        var old: Int32 = 0
        // Every variable of every record is written explicitly (fill values included), so
        // libnetcdf's pre-fill of each new record would only double the I/O.
        try file.check(nc_set_fill(id, NC_NOFILL, &old), "cannot set fill mode")
        return file
    }

    /// Opens an existing file after checking it is a NetCDF-3 file (classic, 64-bit offset
    /// or CDF-5); HDF5-based NetCDF-4 files, empty and non-NetCDF files are refused clearly.
    static func open(path: String, writable: Bool = false) throws -> NetCDFFile {
        // `stat` follows symbolic links, as the reads below do. A FIFO without a writer blocks
        // the first read forever, and libnetcdf seeks, which no pipe or device allows: only a
        // regular file can be a NetCDF input.
        var info = stat()
        guard stat(path, &info) == 0 else { throw TrajectoryError("\(path): no such file") }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw TrajectoryError("\(path): is a directory, not a NetCDF file")
        default: throw TrajectoryError("\(path): not a regular file (a pipe or device); a NetCDF file must be a file on disk")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw TrajectoryError("\(path): cannot be opened for reading") }
        let magic = [UInt8](handle.readData(ofLength: 8))
        try? handle.close()
        if magic.isEmpty { throw TrajectoryError("\(path): empty file (0 bytes), not a NetCDF trajectory") }
        if magic.count >= 4 && magic[0...3] == [0x89, 0x48, 0x44, 0x46] {
            throw TrajectoryError("\(path): NetCDF-4/HDF5 file; AMBER trajectories are NetCDF-3 64-bit offset (convert with `nccopy -k '64-bit offset' IN OUT`)")
        }
        guard magic.count >= 4, magic[0...2] == [0x43, 0x44, 0x46], [1, 2, 5].contains(magic[3]) else {
            throw TrajectoryError("\(path): not a NetCDF-3 file (its first bytes are not CDF\\1, CDF\\2 or CDF\\5; ASCII AMBER restarts and mdcrd files are not supported)")
        }
        try NetCDFHeaderCheck.verify(path: path, size: Int(info.st_size))
        var id: Int32 = -1
        let status = nc_open(path, writable ? NC_WRITE : NC_NOWRITE, &id)
        guard status == NC_NOERR else {
            throw TrajectoryError("\(path): cannot open as NetCDF (truncated or damaged header?): \(message(status))")
        }
        let file = NetCDFFile(path: path, ncid: id)
        if writable {
            var old: Int32 = 0
            try file.check(nc_set_fill(id, NC_NOFILL, &old), "cannot set fill mode")
        }
        return file
    }

    func close() throws {
        guard isOpen else { return }
        isOpen = false
        try check(nc_close(ncid), "closing failed")
    }

    // MARK: Definitions

    func defineDimension(_ name: String, length: Int) throws -> Int32 {
        var id: Int32 = -1
        try check(nc_def_dim(ncid, name, length, &id), "cannot define dimension '\(name)'")
        return id
    }

    func defineVariable(_ name: String, type: nc_type, dimensions: [Int32], units: String? = nil) throws -> Int32 {
        var id: Int32 = -1
        try check(nc_def_var(ncid, name, type, Int32(dimensions.count), dimensions, &id), "cannot define variable '\(name)'")
        if let units { try putText(units, attribute: "units", variable: id) }
        return id
    }

    func putText(_ text: String, attribute: String, variable: Int32 = NC_GLOBAL) throws {
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { chars in
                try check(nc_put_att_text(ncid, variable, attribute, chars.count, chars.baseAddress), "cannot write attribute '\(attribute)'")
            }
        }
    }

    func putNumber(_ value: Double, attribute: String, variable: Int32 = NC_GLOBAL) throws {
        var v = value
        try check(nc_put_att_double(ncid, variable, attribute, NC_DOUBLE, 1, &v), "cannot write attribute '\(attribute)'")
    }

    func endDefinitions() throws { try check(nc_enddef(ncid), "cannot leave define mode") }
    func redefine() throws { try check(nc_redef(ncid), "cannot enter define mode") }
    func sync() throws { try check(nc_sync(ncid), "sync failed (disk full?)") }

    func putCharacters(_ text: String, variable: Int32, name: String) throws {
        let bytes = Array(text.utf8)
        try bytes.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { chars in
                try check(nc_put_var_text(ncid, variable, chars.baseAddress), "cannot write variable '\(name)'")
            }
        }
    }

    // MARK: Inquiry

    var format: Int32 {
        var f: Int32 = 0
        nc_inq_format(ncid, &f)
        return f
    }

    func dimensionID(_ name: String) -> Int32? {
        var id: Int32 = -1
        return nc_inq_dimid(ncid, name, &id) == NC_NOERR ? id : nil
    }

    func dimensionLength(_ id: Int32) throws -> Int {
        var length = 0
        try check(nc_inq_dimlen(ncid, id, &length), "cannot read a dimension length")
        return length
    }

    func dimensionName(_ id: Int32) throws -> String {
        var name = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
        try check(nc_inq_dimname(ncid, id, &name), "cannot read a dimension name")
        return String(cString: name)
    }

    var unlimitedDimension: Int32? {
        var id: Int32 = -1
        return nc_inq_unlimdim(ncid, &id) == NC_NOERR && id >= 0 ? id : nil
    }

    func variableID(_ name: String) -> Int32? {
        var id: Int32 = -1
        return nc_inq_varid(ncid, name, &id) == NC_NOERR ? id : nil
    }

    func variableNames() throws -> [String] {
        var count: Int32 = 0
        try check(nc_inq_nvars(ncid, &count), "cannot count variables")
        return try (0..<count).map { id in
            var name = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
            try check(nc_inq_varname(ncid, id, &name), "cannot read a variable name")
            return String(cString: name)
        }
    }

    func variableType(_ id: Int32) throws -> nc_type {
        var type: nc_type = 0
        try check(nc_inq_vartype(ncid, id, &type), "cannot read a variable type")
        return type
    }

    func variableDimensions(_ id: Int32) throws -> [Int32] {
        var count: Int32 = 0
        try check(nc_inq_varndims(ncid, id, &count), "cannot read a variable's dimensions")
        var ids = [Int32](repeating: 0, count: Int(count))
        if count > 0 { try check(nc_inq_vardimid(ncid, id, &ids), "cannot read a variable's dimensions") }
        return ids
    }

    /// A text attribute, or nil when absent or not text.
    func text(attribute: String, variable: Int32 = NC_GLOBAL) -> String? {
        var type: nc_type = 0
        var length = 0
        guard nc_inq_att(ncid, variable, attribute, &type, &length) == NC_NOERR, type == NC_CHAR else { return nil }
        var chars = [CChar](repeating: 0, count: length + 1)
        guard length == 0 || nc_get_att_text(ncid, variable, attribute, &chars) == NC_NOERR else { return nil }
        let bytes = chars.prefix(length).map { UInt8(bitPattern: $0) }
        // Fortran writers pad with blanks or NULs.
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: CharacterSet(charactersIn: " \0"))
    }

    /// A numeric attribute's first value, or nil when absent or not numeric.
    func number(attribute: String, variable: Int32 = NC_GLOBAL) -> Double? {
        var type: nc_type = 0
        var length = 0
        guard nc_inq_att(ncid, variable, attribute, &type, &length) == NC_NOERR, type != NC_CHAR, length >= 1 else { return nil }
        var values = [Double](repeating: 0, count: length)
        guard nc_get_att_double(ncid, variable, attribute, &values) == NC_NOERR else { return nil }
        return values[0]
    }

    /// Names of every global attribute.
    func globalAttributeNames() throws -> [String] {
        var count: Int32 = 0
        try check(nc_inq_natts(ncid, &count), "cannot count global attributes")
        return try (0..<count).map { k in
            var name = [CChar](repeating: 0, count: Int(NC_MAX_NAME) + 1)
            try check(nc_inq_attname(ncid, NC_GLOBAL, k, &name), "cannot read an attribute name")
            return String(cString: name)
        }
    }
}
