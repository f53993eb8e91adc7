import XCTest
import Geometry
import Trajectory
@testable import Analysis

/// Asking for what a trajectory cannot give fails with a message naming what is missing.
final class MissingDataTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("analysis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A diatomic vibrating at 2000 cm⁻¹, written as an AMBER NetCDF trajectory with positions
    /// only (no velocities, no dipole), frames 2 fs apart (Nyquist 8339 cm⁻¹).
    func writePositionsOnlyTrajectory() throws -> String {
        let path = directory.appendingPathComponent("positions-only.nc").path
        let writer = try AmberTrajectoryWriter(path: path, atomCount: 2)
        let w = 2 * Double.pi * SpectralUnits.speedOfLight * 2000
        for t in 0..<600 {
            let x = 0.05 * cos(w * Double(t) * 2)
            try writer.write(time: Double(t) * 2, positions: [Vec3(-0.6 - x, 0, 0), Vec3(0.6 + x, 0, 0)])
        }
        try writer.close()
        return path
    }

    func testVDOSWithoutVelocitiesSaysSoAndFiniteDifferencesWork() throws {
        let path = try writePositionsOnlyTrajectory()
        let data = try TrajectoryFile.load(path: path, request: LoadRequest(positions: true, velocities: true, dipoles: true))
        XCTAssertNil(data.velocities)
        let dt = try data.frameSpacing()
        XCTAssertEqual(dt, 2, accuracy: 1e-4)
        XCTAssertThrowsError(try data.velocitySeries(fromPositions: false, frameSpacing: dt)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("no velocities"), message)
            XCTAssertTrue(message.contains("--from-positions"), message)
            XCTAssertTrue(message.contains(path), message)
        }
        // With --from-positions the VDOS peaks at the vibration (central differences lower a
        // frequency ν to sin(2πνΔt)/(2πΔt) in amplitude, not in position).
        let (v, frames) = try data.velocitySeries(fromPositions: true, frameSpacing: dt)
        XCTAssertEqual(frames, 598)
        let s = try VibrationalDensityOfStates.compute(velocities: v, atomCount: 2, frameSpacing: dt, masses: [12, 12],
                                                       symbols: ["C", "C"], options: .init(spectral: SpectralOptions(maxLag: 200)))
            .spectrum
        XCTAssertEqual(s.peak(of: "vdos_total", in: 100...8000) ?? 0, 2000, accuracy: s.resolution)
    }

    func testIRWithoutDipolesSaysSo() throws {
        let path = try writePositionsOnlyTrajectory()
        let data = try TrajectoryFile.load(path: path, request: LoadRequest(dipoles: true))
        XCTAssertThrowsError(try data.dipoleSeries()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("no dipole"), message)
            XCTAssertTrue(message.contains("eninet-md dipoles"), message)
        }
        // A quantum correction without a temperature is refused too.
        let dipoles: [Double] = (0..<300).flatMap { t -> [Double] in [cos(Double(t) * 0.3), 0, 0] }
        XCTAssertThrowsError(try InfraredSpectrum.compute(dipoles: dipoles, frameSpacing: 1,
                                                          options: .init(spectral: SpectralOptions(maxLag: 50), correction: .schofield))) {
            XCTAssertTrue("\($0)".contains("--temperature-K"), "\($0)")
        }
    }

    func testFrequencyAboveNyquistSaysWhatSpacingIsNeeded() throws {
        let v = (0..<300).map { sin(Double($0) * 0.1) }   // 100 frames × 1 atom × 3
        let options = VibrationalDensityOfStates.Options(spectral: SpectralOptions(maxLag: 40, maxFrequency: 5000))
        // Frames 5 fs apart resolve up to 3336 cm⁻¹.
        XCTAssertThrowsError(try VibrationalDensityOfStates.compute(velocities: v, atomCount: 1, frameSpacing: 5, masses: [1],
                                                                    symbols: ["H"], options: options)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("Nyquist"), message)
            XCTAssertTrue(message.contains("3335.6"), message)
            XCTAssertTrue(message.contains("3.34 fs apart"), message)
        }
        // 2 fs frames resolve 8339 cm⁻¹: accepted, and the output stops at 5000.
        let s = try VibrationalDensityOfStates.compute(velocities: v, atomCount: 1, frameSpacing: 2, masses: [1],
                                                       symbols: ["H"], options: options).spectrum
        XCTAssertLessThanOrEqual(s.frequencies.last ?? 0, 5000)
        XCTAssertGreaterThan(s.frequencies.last ?? 0, 5000 - s.spacing)
    }

    func testMaxLagAndBlocksBeyondTheTrajectoryAreRefused() throws {
        let v = (0..<300).map { sin(Double($0) * 0.1) }
        for (lag, blocks, fragment) in [(100, 0, "not shorter than the series"), (30, 4, "blocks of 25 frames")] {
            let options = VibrationalDensityOfStates.Options(spectral: SpectralOptions(maxLag: lag, blocks: blocks))
            XCTAssertThrowsError(try VibrationalDensityOfStates.compute(velocities: v, atomCount: 1, frameSpacing: 1, masses: [1],
                                                                        symbols: ["H"], options: options)) {
                XCTAssertTrue("\($0)".contains(fragment), "\($0)")
            }
        }
    }

    func testElementsAreRequiredForNetCDFAndChecked() throws {
        let path = try writePositionsOnlyTrajectory()
        let data = try TrajectoryFile.load(path: path, request: LoadRequest(positions: true))
        XCTAssertThrowsError(try data.resolveSymbols(elements: nil, topology: nil)) {
            XCTAssertTrue("\($0)".contains("--topology"), "\($0)")
            XCTAssertTrue("\($0)".contains("--elements"), "\($0)")
        }
        XCTAssertThrowsError(try data.resolveSymbols(elements: ["C"], topology: nil)) {
            XCTAssertTrue("\($0)".contains("lists 1 atoms"), "\($0)")
        }
        XCTAssertEqual(try data.resolveSymbols(elements: try parseElementList("C*2"), topology: nil), ["C", "C"])
        XCTAssertEqual(try parseElementList("O*2,H, Cu*3"), ["O", "O", "H", "Cu", "Cu", "Cu"])
        XCTAssertThrowsError(try parseElementList("C,Xx"))
        XCTAssertThrowsError(try data.masses(symbols: ["C", "Q"])) { XCTAssertTrue("\($0)".contains("atom 1"), "\($0)") }
    }

    func testUnevenFrameTimesAreNamed() throws {
        var data = TrajectoryData(path: "t.nc", atomCount: 1, frameCount: 4, times: [0, 1, 2, 4])
        XCTAssertThrowsError(try data.frameSpacing()) { XCTAssertTrue("\($0)".contains("frame 3"), "\($0)") }
        data.times = nil
        XCTAssertThrowsError(try data.frameSpacing()) { XCTAssertTrue("\($0)".contains("--frame-dt-fs"), "\($0)") }
        XCTAssertEqual(try data.frameSpacing(override: 0.5), 0.5)
        // A NaN in the middle fails every comparison: the spacing check passed it as 10 fs.
        let holed = TrajectoryData(path: "t.nc", atomCount: 1, frameCount: 5, times: [0, 10, 20, .nan, 40])
        XCTAssertThrowsError(try holed.frameSpacing()) { XCTAssertTrue("\($0)".contains("frame 3 has time nan"), "\($0)") }
    }

    /// AMBER stores time in single precision: 2,000 frames 1 fs apart from 200 ps on were
    /// refused as uneven ("frame 2 is 0.9918 fs after frame 1"), so no run longer than about
    /// 150 ps could be analysed. A real gap at that time is still found.
    func testSinglePrecisionTimesOfALongRunAreEvenlySpaced() throws {
        for start in [200_000.0, 1_000_000.0] {
            let times = (0..<2000).map { Double(Float(start + Double($0))) }
            let data = TrajectoryData(path: "t.nc", atomCount: 1, frameCount: times.count, times: times)
            XCTAssertEqual(try data.frameSpacing(), 1, accuracy: 1e-3)
            var gap = times
            gap[1000] += 1
            XCTAssertThrowsError(try TrajectoryData(path: "t.nc", atomCount: 1, frameCount: gap.count, times: gap).frameSpacing()) {
                XCTAssertTrue("\($0)".contains("not evenly spaced") && "\($0)".contains("--frame-dt-fs"), "\($0)")
            }
        }
        // Stored in ps and read in fs, the same allowance holds.
        let picoseconds = (0..<2000).map { Double(Float(200 + 0.001 * Double($0))) * 1000 }
        XCTAssertEqual(try TrajectoryData(path: "t.nc", atomCount: 1, frameCount: 2000, times: picoseconds).frameSpacing(), 1, accuracy: 1e-3)
        // 1 µs into a run single precision keeps times to ±32 fs: 400 frames 2 fs apart read as
        // 2.031 fs. That is refused, pointing to --frame-dt-fs.
        let coarse = (0..<400).map { Double(Float(1e9 + 2 * Double($0))) }
        XCTAssertThrowsError(try TrajectoryData(path: "t.nc", atomCount: 1, frameCount: 400, times: coarse).frameSpacing()) {
            XCTAssertTrue("\($0)".contains("too coarse") && "\($0)".contains("--frame-dt-fs"), "\($0)")
        }
        // One frame selected from a file that stores times: not "stores no frame times".
        XCTAssertThrowsError(try TrajectoryData(path: "t.nc", atomCount: 1, frameCount: 1, times: [5]).frameSpacing()) {
            XCTAssertTrue("\($0)".contains("only 1 frame selected"), "\($0)")
        }
    }

    /// `--csv` naming the trajectory replaced it with a table, and `--csv` equal to `--svg`
    /// kept only the plot. A symbolic link to the input counts as the input.
    func testOutputsThatNameAnInputOrEachOtherAreRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("distinct-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("t.nc").path, link = dir.appendingPathComponent("link.csv").path
        _ = FileManager.default.createFile(atPath: input, contents: Data("x".utf8))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: input)
        func message(_ outputs: [(String, String)]) -> String {
            do { try AtomicFile.checkDistinct(outputs: outputs, inputs: [("trajectory", input)]); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message([("--csv", input)]).contains("--csv \(input) is the trajectory"))
        XCTAssertTrue(message([("--csv", link)]).contains("is the trajectory"))
        XCTAssertTrue(message([("--csv", dir.appendingPathComponent("a").path), ("--svg", dir.appendingPathComponent("./a").path)])
            .contains("--svg and --csv name the same file"))
        XCTAssertEqual(message([("--csv", dir.appendingPathComponent("a.csv").path), ("--svg", dir.appendingPathComponent("a.svg").path)]), "")
        XCTAssertThrowsError(try parseElementList("H*9000000000000000000")) { XCTAssertTrue("\($0)".contains("more than"), "\($0)") }
    }

    /// Values found by fuzzing the analyses, each of which trapped or gave NaN with exit 0: a
    /// frame spacing of 1e-20 fs (lags past `Int`) or 5e-324 fs (NaN diffusion coefficients),
    /// frame times of that order, and an RDF out to 1e300 Å (bins past `Int`) or 1e6 Å
    /// (5·10⁷ bins: minutes). Now each is an error that names the value.
    func testAbsurdSpacingsAndRangesAreErrors() throws {
        let data = TrajectoryData(path: "t.nc", atomCount: 1, frameCount: 3, times: [0, 1e-9, 2e-9])
        XCTAssertThrowsError(try data.frameSpacing()) { XCTAssertTrue("\($0)".contains("1e-09 fs apart"), "\($0)") }
        for dt in [1e-20, .leastNonzeroMagnitude, .infinity, -1] {
            XCTAssertThrowsError(try data.frameSpacing(override: dt)) { XCTAssertTrue("\($0)".contains("--frame-dt-fs"), "\($0)") }
        }
        XCTAssertEqual(try data.frameSpacing(override: TrajectoryData.shortestFrameSpacing), TrajectoryData.shortestFrameSpacing)
        // The default lag of the shortest spacing still fits the trajectory.
        XCTAssertEqual(SpectralOptions.defaultMaxLag(frames: 1001, frameSpacing: TrajectoryData.shortestFrameSpacing), 500)
        XCTAssertEqual(SpectralOptions.defaultMaxLag(frames: 1001, frameSpacing: 1e-300), 500)
        for rMax in [1e300, 1e6] {
            XCTAssertThrowsError(try RadialDistribution(symbols: ["Ar"], rMax: rMax, binWidth: 0.02)) {
                XCTAssertTrue("\($0)".contains("more than \(RadialDistribution.maximumBinCount) bins"), "\($0)")
            }
        }
        let long = try RadialDistribution(symbols: ["Ar"], rMax: 20_000, binWidth: 0.02)
        XCTAssertEqual(long.binCount, 1_000_000)
        // 20 km in a 20 Å cell reaches 10⁹ images: an error that names r_max, at once.
        XCTAssertThrowsError(try long.add(positions: [.zero], cell: try Cell.orthorhombic(Vec3(20, 20, 20)), frame: 2)) {
            XCTAssertTrue("\($0)".contains("RDF (frame 2): r_max = 20000.0 Å is too long for this cell"), "\($0)")
        }
        // --padding Int.max overflowed the transform length and trapped.
        for padding in [Int.max, SpectralOptions.maximumTransformPoints] {
            XCTAssertThrowsError(try SpectralOptions(maxLag: 10, zeroPadding: padding).validate(samples: 100, sampleSpacing: 1, what: "VDOS")) {
                XCTAssertTrue("\($0)".contains("lower --padding"), "\($0)")
            }
        }
        XCTAssertNoThrow(try SpectralOptions(maxLag: 10, zeroPadding: 1024).validate(samples: 100, sampleSpacing: 1, what: "VDOS"))
    }
}
