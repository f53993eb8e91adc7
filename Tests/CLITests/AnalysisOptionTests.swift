import Foundation
import XCTest

/// `analyze` options that ran to exit 0 with a result that was not what they said (from a
/// probe of the release binary): a fit range silently clipped or moved by single-precision
/// times, negative block counts, wavenumber limits of zero or below, spectra of `inf`.
final class AnalysisOptionTests: XCTestCase {
    /// 81 frames of argon, 10 fs apart (single-precision times in the file).
    func argonTrajectory(_ dir: RunDirectory) throws -> String {
        try argonDeck(dynamics: "integrator = \"verlet\"\ntimestep_fs = 2\nsteps = 400\ninitial_temperature_K = 120\nseed = 4",
                      output: "log_every = 0\ntrajectory = \"t.nc\"\ntrajectory_every = 5\nvelocities_every = 5")
            .write(toFile: dir.path("deck.toml"), atomically: true, encoding: .utf8)
        let result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return dir.path("t.nc")
    }

    func testMSDFitRangesAreCheckedAndMeetTheLagGrid() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        let trajectory = try argonTrajectory(dir)
        func msd(_ options: [String]) throws -> CLI.Result {
            try CLI.run(["analyze", "msd", trajectory, "--elements", "Ar*108", "--csv", dir.path("m.csv")] + options)
        }
        func coefficient(_ r: CLI.Result) -> String? {
            r.stdout.split(separator: "\n").first { $0.hasPrefix("D_total") }.map(String.init)
        }
        // The default range is 20–80 % of the largest lag (200 fs): 40–160 fs. Asking for
        // 40–160 fs explicitly dropped the lag at 160.0000024 fs and changed D.
        let byDefault = try msd([])
        XCTAssertEqual(byDefault.status, 0, byDefault.stderr)
        XCTAssertTrue(byDefault.stdout.contains("fit 40–160 fs"), byDefault.stdout)
        let explicit = try msd(["--fit-start-fs", "40", "--fit-end-fs", "160"])
        XCTAssertEqual(explicit.status, 0, explicit.stderr)
        XCTAssertNotNil(coefficient(byDefault))
        XCTAssertEqual(coefficient(explicit), coefficient(byDefault))

        for (options, fragment) in [
            (["--fit-start-fs", "10", "--fit-end-fs", "1e6"], "--fit-end-fs 1000000.0 fs is beyond the largest lag, 200"),
            (["--fit-start-fs=-10"], "--fit-start-fs must be a finite lag time of 0 fs or more; got -10.0"),
            (["--fit-start-fs", "nan"], "--fit-start-fs must be a finite lag time of 0 fs or more; got nan"),
            (["--fit-end-fs", "20"], "--fit-end-fs 20.0 fs is not above the fit's default start, 40"),
            (["--fit-start-fs", "170"], "--fit-start-fs 170.0 fs is not below the fit's default end, 160"),
            (["--max-lag-fs", "10"], "--max-lag-fs gives a largest lag of 1 frame"),
            (["--max-lag-fs", "4"], "--max-lag-fs 4.0 fs is less than one frame"),
            (["--max-lag-fs", "5000"], "but the trajectory has 81 frames"),
            (["--blocks=-3"], "--blocks must be 0 (no error bars) or at least 2; got -3"),
        ] {
            let r = try msd(options)
            XCTAssertNotEqual(r.status, 0, "\(options)")
            XCTAssertTrue(r.stderr.contains(fragment), "\(options): \(r.stderr)")
        }
    }

    func testSpectraRefuseLimitsThatGiveNoSpectrum() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        let trajectory = try argonTrajectory(dir)
        let csv = dir.path("v.csv")
        for (options, fragment) in [
            (["--max-freq-cm1=-10"], "--max-freq-cm1 must be a positive, finite wavenumber; got -10.0"),
            (["--max-freq-cm1", "0"], "--max-freq-cm1 must be a positive, finite wavenumber; got 0.0"),
            (["--max-freq-cm1", "nan"], "--max-freq-cm1 must be a positive, finite wavenumber; got nan"),
            (["--blocks=-1"], "--blocks must be 0 (no error bars) or at least 2; got -1"),
            // 1e300 fs between frames: a Nyquist frequency of 1e-296 cm⁻¹ and a CSV of inf.
            (["--frame-dt-fs", "1e300"], "not written: column"),
        ] {
            let r = try CLI.run(["analyze", "vdos", trajectory, "--elements", "Ar*108", "--csv", csv] + options)
            XCTAssertNotEqual(r.status, 0, "\(options)")
            XCTAssertTrue(r.stderr.contains(fragment), "\(options): \(r.stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: csv), "\(options)")
        }
        // A stride past the trajectory selects one frame, as 81 does; it read like a damaged file.
        let r = try CLI.run(["analyze", "vdos", trajectory, "--elements", "Ar*108", "--csv", csv, "--stride", "2147483648"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.stderr.contains("Illegal stride") || r.stderr.contains("truncated"), r.stderr)
    }

    /// Two atoms crossing a 10 Å cube at 3 Å per frame (stored wrapped into the cell). Kept
    /// frames 2 apart are 6 Å apart, more than half the cell: `msd --stride 2` unwrapped the
    /// thinned frames and took the −4 Å image (MSD 16 Å² at the first lag, not 36).
    func testMSDUnwrapsEveryFrameBeforeTheStride() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        var text = ""
        for f in 0..<41 {
            text += "2\nLattice=\"10 0 0 0 10 0 0 0 10\" Properties=species:S:1:pos:R:3 pbc=\"T T T\" time_fs=\(f)\n"
            for (x, y) in [(1.0, 2.0), (5.0, 7.0)] {
                let moved = (x + 3 * Double(f)).truncatingRemainder(dividingBy: 10)
                text += "Ar \(moved) \(y) 5.0\n"
            }
        }
        try text.write(toFile: dir.path("walk.extxyz"), atomically: true, encoding: .utf8)
        let r = try CLI.run(["analyze", "msd", dir.path("walk.extxyz"), "--stride", "2", "--csv", dir.path("m.csv")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try String(contentsOfFile: dir.path("m.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
            .map { $0.split(separator: ",").compactMap { Double($0) } }
        XCTAssertGreaterThanOrEqual(rows.count, 3)
        for (lag, row) in rows.enumerated() {
            XCTAssertEqual(row[0], 2 * Double(lag), accuracy: 1e-9, "lag time (fs)")
            // Ballistic: (6 Å × lag)², exactly 0 at lag 0 (round-off made it −2e-15).
            XCTAssertEqual(row[1], 36 * Double(lag * lag), accuracy: 1e-9, "MSD at lag \(lag): \(row)")
        }
        XCTAssertEqual(rows[0][1], 0)
    }

    /// A cell periodic along no axis (`pbc="F F F"` with a Lattice) is no cell to the RDF, which
    /// then needs --volume: --volume was refused because the file "has a cell", so no g at all.
    func testAnRDFOfANonPeriodicCellTakesTheVolumeGiven() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        var text = ""
        for f in 0..<3 {
            text += "3\nLattice=\"20 0 0 0 20 0 0 0 20\" Properties=species:S:1:pos:R:3 pbc=\"F F F\"\n"
            text += "Ar 0 0 0\nAr \(3.0 + 0.1 * Double(f)) 0 0\nAr 0 4 0\n"
        }
        try text.write(toFile: dir.path("gas.extxyz"), atomically: true, encoding: .utf8)
        let r = try CLI.run(["analyze", "rdf", dir.path("gas.extxyz"), "--volume", "1000", "--csv", dir.path("g.csv")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try String(contentsOfFile: dir.path("g.csv"), encoding: .utf8).split(separator: "\n")
        let header = lines[0].split(separator: ",").map(String.init)
        XCTAssertTrue(header.contains { $0.hasPrefix("g_") }, "\(header)")
        // The default r_max is 10 Å, not half of the 20 Å box that does not repeat.
        XCTAssertEqual(try XCTUnwrap(lines.last?.split(separator: ",").first.flatMap { Double($0) }), 10, accuracy: 0.02)
    }

    /// `rdf --volume` on a periodic trajectory was read past; an overlay with `nan` cells was
    /// drawn with a gap.
    func testOptionsThatWouldBeIgnoredOrDrawnWithGapsAreRefused() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        let trajectory = try argonTrajectory(dir)
        var r = try CLI.run(["analyze", "rdf", trajectory, "--elements", "Ar*108", "--csv", dir.path("g.csv"), "--volume", "1000"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--volume 1000.0 Å³ is for trajectories without a periodic cell"), r.stderr)
        r = try CLI.run(["analyze", "rdf", trajectory, "--elements", "Ar*108", "--csv", dir.path("g.csv")])
        XCTAssertEqual(r.status, 0, r.stderr)
        try "r_A,g\n1,0.5\n2,nan\n3,1\n".write(toFile: dir.path("other.csv"), atomically: true, encoding: .utf8)
        r = try CLI.run(["analyze", "rdf", trajectory, "--elements", "Ar*108", "--csv", dir.path("h.csv"),
                         "--svg", dir.path("h.svg"), "--overlay", dir.path("other.csv")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains(dir.path("other.csv") + ":3: the first two columns must be finite numbers"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("h.csv")))
    }
}
