import Foundation
import Geometry
import Trajectory

/// Reads AMBER NetCDF trajectories through the Trajectory module's reader: one bulk read per
/// variable for the whole frame range.
enum NetCDFSource {
    static func load(path: String, request: LoadRequest) throws -> TrajectoryData {
        let reader = try AmberTrajectoryReader(path: path)
        defer { try? reader.close() }
        let all = 0..<reader.frameCount
        let range = request.frames.map { $0.clamped(to: all) } ?? all
        guard !range.isEmpty else {
            throw AnalysisError("\(path) has \(reader.frameCount) frames; the requested range selects none")
        }
        // A stride past the selection reads its first frame alone; libnetcdf refuses strides
        // beyond its own int range ("Illegal stride", which read like a damaged file).
        let stride = max(1, min(request.stride, max(1, range.count)))
        let frames = (range.count - 1) / stride + 1
        var data = TrajectoryData(path: path, atomCount: reader.atomCount, frameCount: frames)
        if reader.variableNames.contains("time") {
            data.times = try reader.readDoubles("time", frames: range, stride: stride, units: .internal)
        }
        if request.positions {
            data.positions = try checked(reader.readDoubles("coordinates", frames: range, stride: stride, units: .internal),
                                         name: "coordinates", path: path, width: 3 * reader.atomCount, first: range.lowerBound, stride: stride)
        }
        if request.velocities && reader.hasVelocities {
            data.velocities = try checked(reader.readDoubles("velocities", frames: range, stride: stride, units: .internal),
                                          name: "velocities", path: path, width: 3 * reader.atomCount, first: range.lowerBound, stride: stride)
        }
        if request.dipoles && reader.hasDipole {
            // A (frame, six) variable read as a longer series moved the IR peak from 316 to 147 cm⁻¹.
            let width = reader.extraVariableWidths["dipole"] ?? 0
            guard width == 3 else {
                throw AnalysisError("\(path): variable 'dipole' holds \(width) values per frame; a dipole has 3 (dimensions frame, spatial)")
            }
            data.dipoles = try checked(reader.readDoubles("dipole", frames: range, stride: stride, units: .internal),
                                       name: "dipole", path: path, width: 3, first: range.lowerBound, stride: stride)
        }
        if request.cells && reader.hasCell {
            let lengths = try reader.readDoubles("cell_lengths", frames: range, stride: stride, units: .internal)
            let angles = try reader.readDoubles("cell_angles", frames: range, stride: stride, units: .internal)
            data.cells = try (0..<frames).map { f in
                let l = Vec3(lengths[3 * f], lengths[3 * f + 1], lengths[3 * f + 2])
                let a = Vec3(angles[3 * f], angles[3 * f + 1], angles[3 * f + 2])
                if l == .zero { return nil }
                do { return try Cell.fromLengthsAndAngles(l, a) } catch {
                    throw AnalysisError("\(path): frame \(range.lowerBound + f * stride): cell lengths \(l.plainDescription) and angles \(a.plainDescription) do not form a cell")
                }
            }
            if data.cells.allSatisfy({ $0 == nil }) { data.cells = [] }
        }
        return data
    }

    /// NetCDF fill values (≈ 9.97e36) mark frames written without the variable.
    private static func checked(_ values: [Double], name: String, path: String, width: Int, first: Int, stride: Int) throws -> [Double] {
        if let bad = values.firstIndex(where: { !(abs($0) < 9.0e36) }) {
            throw AnalysisError("\(path): frame \(first + (bad / width) * stride) has no \(name) (fill value or not finite)")
        }
        return values
    }
}
