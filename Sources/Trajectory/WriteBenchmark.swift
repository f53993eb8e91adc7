import Foundation
import Geometry

/// The cost of writing AMBER NetCDF frames, measured by `AmberTrajectoryWriter.benchmarkWrite`.
public struct TrajectoryWriteBenchmark: Sendable {
    public var atomCount: Int
    public var frames: Int
    /// Mean wall time per frame, including the per-frame `nc_sync`, seconds.
    public var secondsPerFrame: Double
    /// File size divided by the number of frames.
    public var bytesPerFrame: Double
}

extension AmberTrajectoryWriter {
    /// Writes `frames` frames of `atomCount` moving atoms (periodic box, optional velocities
    /// and forces, potential energy and temperature extras) to a scratch file in `directory`
    /// and reports the mean time per frame. The file is removed afterwards.
    public static func benchmarkWrite(atomCount: Int = 32_000, frames: Int = 200, velocities: Bool = true,
                                      forces: Bool = false, directory: String = NSTemporaryDirectory()) throws -> TrajectoryWriteBenchmark {
        let path = URL(fileURLWithPath: directory).appendingPathComponent("eninetmd-write-benchmark-\(getpid()).nc").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let box = try Cell.orthorhombic(Vec3(70, 70, 70))
        var positions = [Vec3](), v = [Vec3](), f = [Vec3]()
        for i in 0..<atomCount {
            let x = Double(i % 40), y = Double((i / 40) % 40), z = Double(i / 1600), t = Double(i)
            positions.append(Vec3(x, y, z) * 1.7)
            v.append(Vec3(sin(t), cos(t), 0.5) * 0.01)
            f.append(Vec3(cos(t), sin(t), -0.25))
        }
        let writer = try AmberTrajectoryWriter(path: path, atomCount: atomCount, velocities: velocities, forces: forces,
                                               periodic: true, extras: [.potentialEnergy, .temperature])
        let start = DispatchTime.now().uptimeNanoseconds
        for k in 0..<frames {
            for i in positions.indices { positions[i] += v[i] }
            try writer.write(time: Double(k) * 10, positions: positions, velocities: velocities ? v : nil,
                             forces: forces ? f : nil, cell: box,
                             extras: ["potential_energy": [-1000 + Double(k)], "temperature": [300]])
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        try writer.close()
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)??.doubleValue ?? 0
        return TrajectoryWriteBenchmark(atomCount: atomCount, frames: frames, secondsPerFrame: elapsed / Double(max(frames, 1)),
                                        bytesPerFrame: size / Double(max(frames, 1)))
    }
}
