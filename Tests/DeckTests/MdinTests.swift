import XCTest
@testable import Deck

/// The AMBER mdin mapping: units (dt in ps → fs, tautp in ps → fs), ntt codes,
/// AMBER defaults, -1 conventions and warnings for keys without meaning here.
final class MdinTests: XCTestCase {
    private let structure = Fixtures.path("argon108.extxyz")
    private let good = Fixtures.path("good")

    private func mdin(_ text: String, overrides: [DeckOverride] = []) throws -> DeckSettings {
        try DeckLoader.parse(text: text, file: "test.in", baseDirectory: good, format: .mdin, overrides: overrides)
    }

    private let eninetmd = "&eninetmd structure='../argon108.extxyz', potential='lj', epsilon_eV=0.0104, sigma_A=3.4, cutoff_A=8.5 /\n"

    func testLangevinDeckMapsEveryKey() throws {
        let s = try DeckLoader.load(path: Fixtures.path("good/argon-langevin.in"))
        XCTAssertEqual(s.format, .mdin)
        XCTAssertEqual(s.title, "Argon 120 K Langevin, AMBER-style input")
        XCTAssertEqual(s.task, .dynamics)
        XCTAssertEqual(s.system, SystemSettings(structurePath: structure, replicate: SIMD3(2, 2, 2)))
        XCTAssertEqual(s.potential, .lennardJones(LennardJonesSettings(epsilonEV: 0.0104, sigmaA: 3.4, cutoffA: 8.5, truncation: .shift, skinA: 1.0)))
        XCTAssertEqual(s.dynamics.steps, 10000)
        XCTAssertEqual(s.dynamics.timestepFs, 2.0, accuracy: 1e-12)   // dt = 0.002 ps
        XCTAssertEqual(s.dynamics.integrator, .langevin(frictionPerPs: 1.0))
        XCTAssertEqual(s.dynamics.temperatureK, 120)
        XCTAssertEqual(s.dynamics.initialTemperatureK, 120)
        XCTAssertEqual(s.dynamics.seed, 7)
        XCTAssertFalse(s.dynamics.seedFromClock)
        XCTAssertEqual(s.output.logEvery, 200)
        XCTAssertEqual(s.output.trajectoryEvery, 50)
        XCTAssertEqual(s.output.velocitiesEvery, 50)        // ntwv = -1 → at the ntwx stride
        XCTAssertEqual(s.output.restartEvery, 1000)
        XCTAssertEqual(s.output.trajectoryPath, good + "/out/argon.nc")
        XCTAssertEqual(s.output.restartPath, good + "/out/argon.ncrst")
        XCTAssertEqual(s.output.logPath, good + "/out/argon.log")
        // ntb, ntc, ntf: accepted, each with a warning naming its line.
        XCTAssertEqual(s.warnings.count, 3, "\(s.warnings)")
        XCTAssertTrue(s.warnings.allSatisfy { $0.hasPrefix(Fixtures.path("good/argon-langevin.in") + ":6: warning:") }, "\(s.warnings)")
        // ntb means something in AMBER: the warning says what takes its place.
        XCTAssertTrue(s.warnings.contains { $0.contains("'ntb' ignored (periodicity comes from the structure file's cell and pbc)") }, "\(s.warnings)")
        // AMBER's minimisation keys are accepted with a word (ncyc was refused as "did you mean 'ntc'?").
        let minimise = try mdin("t\n&cntrl imin=1, maxcyc=50, ncyc=10, ntmin=1 /\n" + eninetmd)
        XCTAssertEqual(minimise.task, .minimize)
        XCTAssertTrue(minimise.warnings.contains { $0.contains("'ncyc' ignored (the minimiser is FIRE") }, "\(minimise.warnings)")
    }

    /// The same deck with Windows line endings was one line to the namelist reader ("\r\n" is
    /// one Character to Swift): "no &cntrl namelist group found".
    func testWindowsLineEndingsReadAsUnixOnes() throws {
        let unix = try String(contentsOfFile: Fixtures.path("good/argon-langevin.in"), encoding: .utf8)
        let windows = try DeckLoader.parse(text: unix.replacingOccurrences(of: "\n", with: "\r\n"), file: "test.in",
                                           baseDirectory: Fixtures.path("good"), format: .mdin)
        let s = try DeckLoader.load(path: Fixtures.path("good/argon-langevin.in"))
        XCTAssertEqual(windows.dynamics, s.dynamics)
        XCTAssertEqual(windows.output, s.output)
        XCTAssertEqual(windows.title, s.title)
    }

    func testMinimisationDeckWithFortranExponentAndCaseInsensitiveKeys() throws {
        let s = try DeckLoader.load(path: Fixtures.path("good/minimize.mdin"))
        XCTAssertEqual(s.task, .minimize)
        XCTAssertEqual(s.title, "")
        XCTAssertEqual(s.minimize, MinimizeSettings(maxSteps: 250, fmaxEVPerA: 0.01))
        XCTAssertEqual(s.potential, .morse(MorseSettings(depthEV: 0.0104, alphaPerA: 1.6, r0A: 3.8, cutoffA: 9.0, truncation: .shift, skinA: 1.0)))
        XCTAssertEqual(s.output.logEvery, 10)
        // AMBER reads the dynamics keys only for dynamics: under imin = 1 they are ignored, with
        // a word, and no longer checked (ntt = 3 without gamma_ln, a negative temp0 were refused).
        XCTAssertEqual(s.warnings.count, 2, "\(s.warnings)")
        XCTAssertTrue(s.warnings[0].contains(":3: warning: 'NTT' ignored (imin = 1 minimises"), s.warnings[0])
        XCTAssertTrue(s.warnings[1].contains(":3: warning: 'TEMP0' ignored (imin = 1 minimises"), s.warnings[1])
        let loose = try mdin("t\n&cntrl imin=1, maxcyc=5, ntt=3, temp0=-5, dt=-1 /\n" + eninetmd)
        XCTAssertEqual(loose.task, .minimize)
        XCTAssertEqual(loose.warnings.count, 3, "\(loose.warnings)")
    }

    func testTimestepConversionAndAmberDefaults() throws {
        let s = try mdin("title\n&cntrl dt=0.0005 /\n" + eninetmd)
        XCTAssertEqual(s.dynamics.timestepFs, 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.dynamics.steps, 1)                   // nstlim default
        XCTAssertEqual(s.dynamics.integrator, .verlet)        // ntt default 0
        XCTAssertEqual(s.output.logEvery, 50)                 // ntpr default
        XCTAssertEqual(s.output.trajectoryEvery, 0)           // ntwx default
        // A trajectory named in &eninetmd does not change AMBER's ntwx = 0: no frames, and a word
        // (the TOML stride of 100 used to apply).
        let named = try mdin("t\n&cntrl nstlim=3 /\n&eninetmd structure='../argon108.extxyz', potential='lj', epsilon_eV=1, sigma_A=1, cutoff_A=2.5,\n trajectory='t.nc' /\n")
        XCTAssertEqual(named.output.trajectoryEvery, 0)
        XCTAssertEqual(named.warnings.count, 1, "\(named.warnings)")
        XCTAssertTrue(named.warnings.first?.contains(":4: warning: 'trajectory' is given but ntwx is not") ?? false, "\(named.warnings)")
        let d = try mdin("title\n&cntrl nstlim=3 /\n" + eninetmd)
        XCTAssertEqual(d.dynamics.timestepFs, 1.0, accuracy: 1e-12)  // dt default 0.001 ps
    }

    func testBussiUsesTautpInPicoseconds() throws {
        let s = try mdin("t\n&cntrl ntt=11, temp0=250, tautp=0.5, nstlim=10 /\n" + eninetmd)
        XCTAssertEqual(s.dynamics.integrator, .bussi(tauFs: 500))
        XCTAssertEqual(s.dynamics.temperatureK, 250)
        let d = try mdin("t\n&cntrl ntt=11 /\n" + eninetmd)
        XCTAssertEqual(d.dynamics.integrator, .bussi(tauFs: 1000))  // AMBER default tautp = 1 ps
        XCTAssertEqual(d.dynamics.temperatureK, 300)                 // AMBER default temp0
    }

    /// ntp = 1 with barostat = 2 is AMBER's Monte Carlo barostat; pres0 and mcbarint take
    /// AMBER's defaults (1 bar, every 100 steps) when left out.
    func testTheMonteCarloBarostatMapsFromNtpBarostatPres0AndMcbarint() throws {
        let s = try mdin("t\n&cntrl ntt=3, gamma_ln=2, temp0=90, ntp=1, barostat=2, pres0=250.0, mcbarint=20, taup=2.0, comp=44.6 /\n" + eninetmd)
        XCTAssertEqual(s.dynamics.barostat, BarostatSettings(pressureBar: 250, every: 20))
        XCTAssertTrue(s.warnings.contains { $0.contains("'taup' ignored (it is the Berendsen barostat's") }, "\(s.warnings)")
        XCTAssertTrue(s.warnings.contains { $0.contains("'comp' ignored (the compressibility sets the Berendsen barostat's coupling") }, "\(s.warnings)")
        let defaults = try mdin("t\n&cntrl ntt=11, ntp=1, barostat=2 /\n" + eninetmd)
        XCTAssertEqual(defaults.dynamics.barostat, BarostatSettings(pressureBar: 1, every: 100))
        let constantVolume = try mdin("t\n&cntrl ntt=3, gamma_ln=2, ntp=0, pres0=5 /\n" + eninetmd)
        XCTAssertNil(constantVolume.dynamics.barostat)
        XCTAssertTrue(constantVolume.warnings.contains { $0.contains("'pres0' ignored (only used with ntp = 1 or 2)") }, "\(constantVolume.warnings)")
        let anisotropic = try mdin("t\n&cntrl ntt=3, gamma_ln=2, ntp=2, barostat=2, pres0=10 /\n" + eninetmd)
        XCTAssertEqual(anisotropic.dynamics.barostat, BarostatSettings(pressureBar: 10, every: 100, anisotropic: true))
        assertMdinError("t\n&cntrl ntt=3, gamma_ln=2,\n ntp=1 /\n" + eninetmd,
                        "test.in:3: ntp = 1 needs barostat = 2 (Monte Carlo); barostat = 1 (Berendsen, AMBER's default) is not supported")
        assertMdinError("t\n&cntrl ntt=3, gamma_ln=2, ntp=1,\n barostat=1 /\n" + eninetmd,
                        "test.in:3: ntp = 1 needs barostat = 2 (Monte Carlo); barostat = 1 (Berendsen, AMBER's default) is not supported")
        assertMdinError("t\n&cntrl ntt=3, gamma_ln=2, ntp=1,\n barostat=3 /\n" + eninetmd,
                        "test.in:3: ntp = 1 needs barostat = 2 (Monte Carlo); barostat = 3 is not supported")
        assertMdinError("t\n&cntrl ntt=3, gamma_ln=2,\n ntp=3, barostat=2 /\n" + eninetmd,
                        "test.in:3: key 'ntp' = 3 is not supported (supported: 0 = constant volume, 1 = isotropic and 2 = anisotropic pressure with barostat = 2)")
        // NVE has no temperature for the acceptance test: the error names the AMBER key.
        XCTAssertThrowsError(try mdin("t\n&cntrl ntt=0,\n ntp=1, barostat=2 /\n" + eninetmd)) {
            XCTAssertTrue("\($0)".hasPrefix("test.in:3: key 'ntp'"), "\($0)")
            XCTAssertTrue("\($0)".contains("needs a thermostat"), "\($0)")
        }
    }

    func testSeedFromClockAndForcesAtTrajectoryStride() throws {
        let s = try mdin("t\n&cntrl ig=-1, ntwx=10, ntwf=-1 /\n&eninetmd structure='../argon108.extxyz', potential='lj', epsilon_eV=1, sigma_A=1, cutoff_A=2.5, trajectory='t.nc' /\n")
        XCTAssertTrue(s.dynamics.seedFromClock)
        XCTAssertEqual(s.output.forcesEvery, 10)
        XCTAssertEqual(s.output.velocitiesEvery, 0)
    }

    func testCommandLineSuppliesStructureAndPotential() throws {
        let s = try mdin("t\n&cntrl nstlim=5, cut=7.0 /\n", overrides: [
            DeckOverride(key: "system.structure", value: structure, source: "--structure"),
            try DeckOverride(assignment: "potential.type=lj"),
            try DeckOverride(assignment: "potential.epsilon_eV=0.01"),
            try DeckOverride(assignment: "potential.sigma_A=3.4"),
        ])
        XCTAssertEqual(s.system.structurePath, structure)
        XCTAssertEqual(s.potential, .lennardJones(LennardJonesSettings(epsilonEV: 0.01, sigmaA: 3.4, cutoffA: 7.0)))
        XCTAssertEqual(s.dynamics.steps, 5)
    }

    func testEveryNttCodeOutsideTheSupportedSetIsRejected() {
        for code in [1, 2, 4, 9, 10] {
            XCTAssertThrowsError(try mdin("t\n&cntrl\n ntt=\(code) /\n" + eninetmd)) { e in
                XCTAssertTrue("\(e)".hasPrefix("test.in:3: key 'ntt' = \(code) is not supported (supported: 0 = NVE velocity Verlet, 3 = Langevin, 11 = Bussi)"), "\(e)")
            }
        }
    }

    /// The deck `text` is refused with exactly `message`.
    private func assertMdinError(_ text: String, _ message: String, line: UInt = #line) {
        XCTAssertThrowsError(try mdin(text), line: line) { XCTAssertEqual("\($0)", message, line: line) }
    }

    func testErrorsCiteTheAmberKeyAndItsText() {
        assertMdinError("t\n&cntrl\n  nstlim=10,\n  dt=-0.002 /\n" + eninetmd, "test.in:4: key 'dt' (dynamics.timestep_fs) must be positive (got -0.002)")
        assertMdinError("t\n&cntrl ntt=3, temp0=300 /\n" + eninetmd, "test.in: missing dynamics.friction_per_ps: ntt = 3 (Langevin) needs gamma_ln > 0 (ps^-1) in &cntrl")
        assertMdinError("t\n&cntrl nstlim=1,\n ntwx=100 /\n" + eninetmd, "test.in:3: key 'ntwx' (output.trajectory_every) = 100 needs a trajectory file (give trajectory='file.nc' in &eninetmd)")
        // The message said "ntwx is 0" whatever ntwx was.
        assertMdinError("t\n&cntrl nstlim=1, ntwx=-3,\n ntwv=-1 /\n" + eninetmd, "test.in:3: key 'ntwv' = -1 stores velocities in the trajectory at the ntwx stride, but ntwx is -3 (give ntwx a positive stride)")
        assertMdinError("t\n&cntrl nstlim=10,\n  dt=1e306 /\n" + eninetmd, "test.in:3: key 'dt' = 1e306 ps is too large a timestep")
        assertMdinError("t\n&cntrl nstlim=10 /\n&eninetmd structure='../argon108.extxyz', replicate=2, 0, 2,\n potential='lj', epsilon_eV=1, sigma_A=1, cutoff_A=2.5 /\n", "test.in:3: key 'replicate' (system.replicate[1]) must be at least 1 (got 0)")
        // Messages about a second key named it by its TOML name, which an mdin deck never wrote.
        assertMdinError("t\n&cntrl nstlim=1, ntwx=10,\n ntwv=5 /\n&eninetmd structure='../argon108.extxyz', potential='lj', epsilon_eV=1, sigma_A=1, cutoff_A=2.5, trajectory='t.nc' /\n", "test.in:3: key 'ntwv' (output.velocities_every) must be 0 or equal to 'ntwx' = 10 (they are stored in the trajectory frames) (got 5)")
        assertMdinError("t\n&cntrl nstlim=1, cut=8.5 /\n&eninetmd structure='../argon108.extxyz', potential='lj', epsilon_eV=1, sigma_A=1,\n truncation='switch', switch_start_A=9.0 /\n", "test.in:4: key 'switch_start_A' (potential.switch_start_A) must be smaller than 'cut' = 8.5 (got 9.0)")
        // Numerals past Int64 read as reals, and said "must be an integer".
        assertMdinError("t\n&cntrl nstlim=10,\n  ig=-99999999999999999999 /\n" + eninetmd, "test.in:3: key 'ig' (dynamics.seed) is smaller than the smallest integer, -9223372036854775808 (got -99999999999999999999)")
        XCTAssertThrowsError(try mdin("t\n&cntrl nstlim=1 /\n")) { e in
            XCTAssertTrue("\(e)".contains("missing system.structure"), "\(e)")
        }
        // An array element read as the previous key's next value: "key 'imin': invalid value 'nstlim(1)'".
        assertMdinError("t\n&cntrl imin=0,\n  nstlim(1)=5 /\n" + eninetmd, "test.in:3: 'nstlim(1)' is not a key name (array elements such as nstlim(1) are not read; write the key alone)")
        assertMdinError("t\n&cntrl nstlim(1)=5 /\n" + eninetmd, "test.in:2: 'nstlim(1)' is not a key name (array elements such as nstlim(1) are not read; write the key alone)")
        assertMdinError("t\n&cntrl nstlim = 5 = 6 /\n" + eninetmd, "test.in:2: key 'nstlim': unexpected '=' (missing comma?)")
    }
}

final class MdinCutoffAndOutputTests: XCTestCase {
    func testCutIsDroppedWithAWarningForAnENINetModel() throws {
        let text = "t\n&cntrl nstlim=2, cut=9.0 /\n&eninetmd structure='../argon108.extxyz', potential='eninet', model='../model.safetensors' /\n"
        let s = try DeckLoader.parse(text: text, file: "e.in", baseDirectory: Fixtures.path("good"), format: .mdin)
        XCTAssertEqual(s.potential, .eninet(ENINetSettings(modelPath: Fixtures.path("model.safetensors"))))
        XCTAssertEqual(s.warnings, ["e.in:2: warning: 'cut' ignored (an ENINet model sets its own cutoff)"])
    }

    func testAnIPIClientTakesItsAddressFromEninetmdAndCutIsDropped() throws {
        let text = "t\n&cntrl nstlim=2, cut=9.0 /\n&eninetmd structure='../argon108.extxyz', potential='ipi', address='localhost:31415', timeout_s=60 /\n"
        let s = try DeckLoader.parse(text: text, file: "i.in", baseDirectory: Fixtures.path("good"), format: .mdin)
        XCTAssertEqual(s.potential, .ipi(IPISettings(address: .tcp(host: "localhost", port: 31415), timeoutS: 60)))
        XCTAssertEqual(s.warnings, ["i.in:2: warning: 'cut' ignored (an i-PI client sets its own range)"])
    }

    func testCutAndCutoffTogetherAreAConflict() {
        let text = "t\n&cntrl cut=9.0 /\n&eninetmd structure='../argon108.extxyz', potential='lj',\n epsilon_eV=1, sigma_A=1, cutoff_A=2.5 /\n"
        XCTAssertThrowsError(try DeckLoader.parse(text: text, file: "c.in", baseDirectory: Fixtures.path("good"), format: .mdin)) { e in
            XCTAssertEqual("\(e)", "c.in:4: key 'cutoff_A' sets potential.cutoff_A, which 'cut' on line 2 already sets")
        }
    }

    func testOutputDirectoriesAreCreatedOnRequest() throws {
        let root = NSTemporaryDirectory() + "deck-out-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let out = OutputSettings(logPath: root + "/a/b/run.log", trajectoryPath: root + "/c/t.nc")
        try out.createParentDirectories()
        var isDirectory: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/a/b", isDirectory: &isDirectory) && isDirectory.boolValue)
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/c", isDirectory: &isDirectory) && isDirectory.boolValue)
    }
}
