import Foundation
import Trajectory

/// Reads AMBER NetCDF trajectories through the Trajectory module's reader.
enum NetCDFSource {
    static func load(path: String, request: LoadRequest) throws -> TrajectoryData {
        throw AnalysisError("\(path): reading AMBER NetCDF needs the Trajectory module's NetCDF reader, which this build does not have yet")
    }
}
