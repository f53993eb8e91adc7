import Foundation
import Geometry
import Trajectory

/// Which variables an analysis needs; the loader reads only those.
public struct LoadRequest: Sendable {
    public var positions: Bool
    public var velocities: Bool
    public var dipoles: Bool
    public var cells: Bool
    /// Frames to read (nil: all) and the stride within them.
    public var frames: Range<Int>?
    public var stride: Int

    public init(positions: Bool = false, velocities: Bool = false, dipoles: Bool = false, cells: Bool = false,
                frames: Range<Int>? = nil, stride: Int = 1) {
        self.positions = positions
        self.velocities = velocities
        self.dipoles = dipoles
        self.cells = cells
        self.frames = frames
        self.stride = stride
    }
}

/// Opens trajectories for analysis: AMBER NetCDF (`.nc`, `.ncdf`, `.netcdf`) from this engine
/// or any other AMBER-convention program, and multi-frame structure files (extended XYZ,
/// XYZ, PDB).
public enum TrajectoryFile {
    public static func isNetCDF(_ path: String) -> Bool {
        ["nc", "ncdf", "netcdf", "cdf"].contains(URL(fileURLWithPath: path).pathExtension.lowercased())
    }

    public static func load(path: String, request: LoadRequest) throws -> TrajectoryData {
        guard FileManager.default.fileExists(atPath: path) else { throw AnalysisError("\(path): no such file") }
        let data: TrajectoryData
        if isNetCDF(path) {
            data = try NetCDFSource.load(path: path, request: request)
        } else {
            let structures = try StructureFile.read(path: path, frames: request.frames)
            data = try TrajectoryData(structures: structures, path: path)
            if request.stride > 1 { return try data.selecting(frames: 0..<data.frameCount, stride: request.stride) }
            return data
        }
        return data
    }

    /// Element symbols of a topology (structure) file.
    public static func topologySymbols(path: String) throws -> [String] {
        try StructureFile.readFirst(path: path).symbols
    }
}
