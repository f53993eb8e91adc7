import CNetCDF
import Foundation
import XCTest
import Geometry
import Trajectory

/// Ways `run`, `minimize`, `analyze` and `dipoles` lost or overwrote a user's files, found by
/// probing them with mistaken decks and options; each must now be an error that leaves the
/// files as they were.
final class OutputSafetyTests: XCTestCase {
    private let verlet = """
    integrator = "verlet"
    timestep_fs = 1.0
    steps = 100
    initial_temperature_K = 120
    seed = 5
    """

    private func trajectoryTimes(_ path: String) throws -> [Double] {
        let reader = try AmberTrajectoryReader(path: path)
        defer { try? reader.close() }
        return try reader.times()
    }

    /// A restart counted the frames to keep by the deck's stride: frames written every 10 steps
    /// and continued with every 20 lost the frames at 60–100 fs. Now the stride must match and
    /// the file is left alone when it does not; with it, the frames up to the restart stay,
    /// and the log goes on from its restart step without a second header or repeated rows.
    func testARestartKeepsFramesByTimeAndTheLogInStep() throws {
        let output = """
        log = "out/log.csv"
        log_every = 10
        trajectory = "out/t.nc"
        trajectory_every = 10
        restart = "out/r.ncrst"
        """
        let dir = try RunDirectory(deck: argonDeck(dynamics: verlet, output: output))
        defer { dir.remove() }
        let deck = dir.path("deck.toml")
        var result = try CLI.run(["run", deck, "--quiet", "--steps", "50"])
        XCTAssertEqual(result.status, 0, result.stderr)
        try FileManager.default.copyItem(atPath: dir.path("out/r.ncrst"), toPath: dir.path("half.ncrst"))
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("half.ncrst")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let full = try Data(contentsOf: URL(fileURLWithPath: dir.path("out/t.nc")))
        XCTAssertEqual(try trajectoryTimes(dir.path("out/t.nc")).count, 11)

        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("half.ncrst"), "--set", "output.trajectory_every=20"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("keep the stride"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out/t.nc"))), full, "the refused restart left the file alone")

        // A row cut short by a kill is dropped, not run on into the next.
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: dir.path("out/log.csv")))
        handle.seekToEndOfFile()
        handle.write(Data("110,110.0000,-8.1".utf8))
        try handle.close()
        // Continued again from step 50: the frames after it are replaced, not appended twice.
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("half.ncrst")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out/t.nc"))), full)
        let rows = try String(contentsOfFile: dir.path("out/log.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.filter { $0.hasPrefix("step,") }.count, 1, "one header")
        XCTAssertEqual(rows.dropFirst().map { Int($0.split(separator: ",")[0]) }, (0...10).map { $0 * 10 })

        // Velocities asked for on a restart into a trajectory without them were silently not written.
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("half.ncrst"), "--set", "output.velocities_every=10"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("no velocities variable"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out/t.nc"))), full)

        // A finished run continued again, with no step left, wrote its last frame a second time.
        try FileManager.default.copyItem(atPath: dir.path("out/r.ncrst"), toPath: dir.path("end.ncrst"))
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("end.ncrst")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try trajectoryTimes(dir.path("out/t.nc")).count, 11)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out/t.nc"))), full)
    }

    /// A trajectory of other atoms was cut to the restart's frame count before its first
    /// frame was refused (27,972 bytes became 2,512).
    func testARestartIntoATrajectoryOfOtherAtomsLeavesItAlone() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: verlet, output: "trajectory = \"out/t.nc\"\ntrajectory_every = 10\nrestart = \"out/r.ncrst\""))
        defer { dir.remove() }
        var result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--steps", "30"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let writer = try AmberTrajectoryWriter(path: dir.path("other.nc"), atomCount: 9)
        for k in 0..<8 { try writer.write(time: Double(10 * k), positions: (0..<9).map { Vec3(Double($0), 0, 0) }) }
        try writer.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: dir.path("other.nc")))
        result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--restart", dir.path("out/r.ncrst"),
                              "--set", "output.trajectory=\(dir.path("other.nc"))"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("9 atoms, this run 108"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("other.nc"))), before)
    }

    /// `--set output.log=deck.toml` replaced the deck with the CSV log, and a log named like
    /// the restart being read was appended to it; a model file was replaced the same way. A
    /// restart past the run's total cut the outputs back; a log naming a directory failed only
    /// after the trajectory was created.
    func testOutputsOverTheDeckTheModelOrTheRestartAreRefused() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: verlet, output: "restart = \"out/r.ncrst\""))
        defer { dir.remove() }
        let deck = dir.path("deck.toml")
        let deckText = try String(contentsOfFile: deck, encoding: .utf8)
        var result = try CLI.run(["run", deck, "--quiet", "--set", "output.log=\(deck)"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("would overwrite the deck"), result.stderr)
        XCTAssertEqual(try String(contentsOfFile: deck, encoding: .utf8), deckText)

        result = try CLI.run(["run", deck, "--quiet", "--steps", "20"])
        XCTAssertEqual(result.status, 0, result.stderr)
        try FileManager.default.copyItem(atPath: dir.path("out/r.ncrst"), toPath: dir.path("saved.ncrst"))
        let restart = try Data(contentsOf: URL(fileURLWithPath: dir.path("saved.ncrst")))
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("saved.ncrst"), "--set", "output.log=\(dir.path("saved.ncrst"))"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("would overwrite the restart"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("saved.ncrst"))), restart)

        // A restart past the run's total: continuing cut the trajectory and restart back to the
        // restart's step, added nothing, and exited 0.
        result = try CLI.run(["run", deck, "--quiet", "--steps", "30"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let outputs = ["out/r.ncrst"].map { dir.path($0) }
        let before = try outputs.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        result = try CLI.run(["run", deck, "--quiet", "--restart", dir.path("saved.ncrst"), "--steps", "10"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("is at step 20, past the run's total of 10 steps"), result.stderr)
        XCTAssertEqual(try outputs.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }, before, "the outputs are unchanged")

        // An output that cannot be written is found before the run writes anything: a log named
        // like the directory the run creates for the trajectory left an empty trajectory behind.
        result = try CLI.run(["run", deck, "--quiet", "--set", "output.log=\(dir.path("made"))",
                              "--set", "output.trajectory=\(dir.path("made/fresh.nc"))", "--set", "output.trajectory_every=1"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("output.log is a directory"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("made/fresh.nc")), "a trajectory was started")

        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/energy/ethanol-energy.safetensors")
        if FileManager.default.fileExists(atPath: model.path) {
            let copy = dir.path("model.safetensors")
            try FileManager.default.copyItem(atPath: model.path, toPath: copy)
            let eninetDeck = """
            [system]
            structure = "\(CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path)"
            [potential]
            type = "eninet"
            model = "model.safetensors"
            [dynamics]
            integrator = "verlet"
            timestep_fs = 0.5
            steps = 2
            [output]
            log = "model.safetensors"
            """
            try eninetDeck.write(toFile: dir.path("eninet.toml"), atomically: true, encoding: .utf8)
            result = try CLI.run(["run", dir.path("eninet.toml"), "--quiet"])
            XCTAssertNotEqual(result.status, 0)
            XCTAssertTrue(result.stderr.contains("would overwrite the model"), result.stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: copy)), try Data(contentsOf: model))
        }
    }

    /// With its outputs already there in a directory that cannot be written, a run extended the
    /// trajectory and the log, then failed at its end on the restart (written beside the old one
    /// and renamed): nothing to continue from. Root may write anywhere, so the run goes as
    /// `nobody` through `setpriv`; skipped where the suite cannot do that.
    func testOutputsInADirectoryThatCannotBeWrittenAreRefusedBeforeTheRun() throws {
        let setpriv = URL(fileURLWithPath: "/usr/bin/setpriv")
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: setpriv.path) else {
            throw XCTSkip("needs root and setpriv to run as a user without permissions")
        }
        let output = "log = \"out/log.csv\"\nlog_every = 10\ntrajectory = \"out/t.nc\"\ntrajectory_every = 10\nrestart = \"out/r.ncrst\""
        let dir = try RunDirectory(deck: argonDeck(dynamics: verlet, output: output))
        defer { dir.remove() }
        var result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--steps", "20"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let files = ["out/log.csv", "out/t.nc", "out/r.ncrst"].map { dir.path($0) }
        for file in files { try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: file) }
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: dir.path("out"))
        let before = try files.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        result = try CLI.run(["--reuid=nobody", "--regid=nogroup", "--clear-groups", CLI.executable.path,
                              "run", dir.path("deck.toml"), "--quiet", "--restart", dir.path("out/r.ncrst"), "--steps", "40"],
                             program: setpriv)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("output.log cannot be written: no permission to write in"), result.stderr)
        XCTAssertEqual(try files.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }, before, "the outputs are unchanged")
    }

    /// A structure of no atoms ran and "converged"; a trajectory named .xyz was NetCDF under
    /// that name; replicate = [100000, 100000, 1] filled the memory until the kernel killed it.
    func testEmptyStructuresMisnamedTrajectoriesAndHugeSupercellsAreRefused() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: verlet, output: "trajectory = \"out/t.xyz\""))
        defer { dir.remove() }
        var result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("is written as AMBER NetCDF"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("out/t.xyz")))

        result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--set", "output.trajectory=\(dir.path("out/t.nc"))",
                              "--set", "system.replicate=[100000, 100000, 1]"], timeout: 60)
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("makes more than 50000000 atoms"), result.stderr)

        try "0\n\n".write(toFile: dir.path("argon108.extxyz"), atomically: true, encoding: .utf8)
        result = try CLI.run(["run", dir.path("deck.toml"), "--quiet", "--set", "output.trajectory=\(dir.path("out/t.nc"))"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("has no atoms"), result.stderr)
    }

    /// `analyze ... --csv` naming the trajectory turned it into a table (exit 0).
    func testAnAnalysisOutputOverItsInputIsRefused() throws {
        let dir = try RunDirectory(deck: argonDeck(dynamics: verlet, output: "trajectory = \"t.nc\"\ntrajectory_every = 10\nvelocities_every = 10"))
        defer { dir.remove() }
        var result = try CLI.run(["run", dir.path("deck.toml"), "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let before = try Data(contentsOf: URL(fileURLWithPath: dir.path("t.nc")))
        result = try CLI.run(["analyze", "vdos", dir.path("t.nc"), "--elements", "Ar*108", "--csv", dir.path("t.nc")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("would destroy the input"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("t.nc"))), before)

        // `thermo`: more blocks than rows reported an error bar anyway, and a bad --plot
        // failed after the table was written.
        try "step,time_fs,total_eV\n0,0,1\n1,1,2\n2,2,4\n".write(toFile: dir.path("log.csv"), atomically: true, encoding: .utf8)
        result = try CLI.run(["analyze", "thermo", dir.path("log.csv"), "--csv", dir.path("a.csv")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--blocks 10 is more than its 3 rows"), result.stderr)
        result = try CLI.run(["analyze", "thermo", dir.path("log.csv"), "--blocks", "2", "--csv", dir.path("a.csv"),
                              "--svg", dir.path("a.svg"), "--plot", "nothing"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("a.csv")))
        // A column asked for twice was averaged twice; a NaN start time said "no rows at or after nan fs".
        for (options, fragment) in [(["--columns", "total_eV,total_eV"], "--columns names 'total_eV' twice"),
                                    (["--discard-fs", "nan"], "--discard-fs must be a finite time; got nan")] {
            result = try CLI.run(["analyze", "thermo", dir.path("log.csv"), "--blocks", "2", "--csv", dir.path("a.csv")] + options)
            XCTAssertNotEqual(result.status, 0, "\(options)")
            XCTAssertTrue(result.stderr.contains(fragment), "\(options): \(result.stderr)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("a.csv")))
        result = try CLI.run(["analyze", "thermo", dir.path("log.csv"), "--blocks", "2", "--csv", dir.path("a.csv")])
        XCTAssertEqual(result.status, 0, result.stderr)
    }

    /// `dipoles` rebuilds the file from its frames: in place, a variable it cannot carry
    /// (here masses(atom)) was deleted for good, with no word. Now it refuses unless --output
    /// names a new file, and then it says what it leaves out.
    func testDipolesInPlaceRefusesToDropVariables() throws {
        let model = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/dipole/ethanol-dipole.safetensors")
        guard FileManager.default.fileExists(atPath: model.path) else { throw XCTSkip("\(model.path) is absent") }
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        let path = dir.path("e.nc")
        let structure = try StructureFile.readFirst(path: CLI.repositoryRoot.appendingPathComponent("Examples/ethanol/ethanol.xyz").path)
        let writer = try AmberTrajectoryWriter(path: path, atomCount: structure.count)
        for k in 0..<4 { try writer.write(time: Double(k), positions: structure.positions.map { $0 + Vec3(0.01 * Double(k), 0, 0) }) }
        try writer.close()
        var id: Int32 = -1, atomDim: Int32 = -1, massesID: Int32 = -1
        XCTAssertEqual(nc_open(path, NC_WRITE, &id), NC_NOERR)
        XCTAssertEqual(nc_redef(id), NC_NOERR)
        XCTAssertEqual(nc_inq_dimid(id, "atom", &atomDim), NC_NOERR)
        XCTAssertEqual(nc_def_var(id, "masses", NC_DOUBLE, 1, [atomDim], &massesID), NC_NOERR)
        XCTAssertEqual(nc_enddef(id), NC_NOERR)
        XCTAssertEqual(nc_put_var_double(id, massesID, [Double](repeating: 12, count: structure.count)), NC_NOERR)
        XCTAssertEqual(nc_close(id), NC_NOERR)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        var result = try CLI.run(["dipoles", "--model", model.path, path, "--elements", "C,C,O,H*6"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("would drop 'masses'") && result.stderr.contains("--output"), result.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)

        result = try CLI.run(["dipoles", "--model", model.path, path, "--elements", "C,C,O,H*6", "--output", dir.path("d.nc")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("'masses'") && result.stderr.contains("not copied"), result.stderr)
        XCTAssertTrue(try AmberTrajectoryReader(path: dir.path("d.nc")).hasDipole)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)

        // In place (on the file without masses), the rebuilt file keeps the user's permissions,
        // and a wrong --elements count is refused as soon as the list passes the file's atoms.
        result = try CLI.run(["dipoles", "--model", model.path, dir.path("d.nc"), "--elements", "C,C,O,H*6", "--output", dir.path("p.nc")])
        XCTAssertEqual(result.status, 0, result.stderr)
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: dir.path("p.nc"))
        result = try CLI.run(["dipoles", "--model", model.path, dir.path("p.nc"), "--elements", "C,C,O,H*6"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: dir.path("p.nc"))[.posixPermissions] as? NSNumber)?.intValue, 0o640)
        // Through a symbolic link (which the NetCDF reader's size check once took for the file,
        // calling it truncated), the named file is rewritten and the link stays a link.
        try FileManager.default.createSymbolicLink(atPath: dir.path("l.nc"), withDestinationPath: dir.path("p.nc"))
        result = try CLI.run(["dipoles", "--model", model.path, dir.path("l.nc"), "--elements", "C,C,O,H*6"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: dir.path("l.nc")), dir.path("p.nc"))
        XCTAssertEqual((try FileManager.default.attributesOfItem(atPath: dir.path("p.nc"))[.posixPermissions] as? NSNumber)?.intValue, 0o640)
        result = try CLI.run(["dipoles", "--model", model.path, dir.path("p.nc"), "--elements", "C,C,O,H*99999999"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("'H*99999999' makes more than the trajectory's 9 atoms"), result.stderr)
    }

    /// A FIFO with no writer blocked the first read of a NetCDF input forever.
    func testAPipeNamedAsATrajectoryIsRefusedNotWaitedOn() throws {
        let dir = try RunDirectory(deck: "")
        defer { dir.remove() }
        let fifo = dir.path("pipe.nc")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let result = try CLI.run(["analyze", "rdf", fifo, "--elements", "H", "--csv", dir.path("r.csv")], timeout: 30)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("\(fifo): not a regular file"), result.stderr)
    }
}
