import Foundation
import XCTest
import Geometry
import Trajectory

/// The shipped ethanol models (`Examples/ethanol`, trained with `Examples/ethanol/train-*.toml`
/// on the GFN2-xTB data of `../shared/data/xtb`): accuracy on the held-out frames (issue 6,
/// point 3), stability and energy conservation in MD (issue 6, point 5), and the IR spectrum
/// beside the GFN2-xTB reference (issue 7, point 3). Every test runs the real binary.
///
/// The 500 K stability run is 20 ps in the default suite and the issue's full 100 ps with
/// `ENINETMD_FULL_VALIDATION=1` (about 7 minutes more on one core).
final class EthanolModelTests: XCTestCase {
    static let examples = CLI.repositoryRoot.appendingPathComponent("Examples/ethanol")
    /// Trained on the 1000 training frames alone, within 60 minutes (issue 6, point 3).
    static let thousandFrameModel = examples.appendingPathComponent("energy/ethanol-energy.safetensors")
    /// The model for MD: the one above trained further with frames beyond 500 K sampling
    /// (`Examples/ethanol/data/README.md`); the example deck runs it.
    static let energyModel = examples.appendingPathComponent("energy-stable/ethanol-energy-stable.safetensors")
    static let dipoleModel = examples.appendingPathComponent("dipole/ethanol-dipole.safetensors")
    static let dataset = CLI.sharedDirectory.appendingPathComponent("data/xtb/ethanol-gfn2-500K.extxyz")
    static let split = CLI.sharedDirectory.appendingPathComponent("data/xtb/ethanol-split-seed1.json")
    static let referenceNVE = CLI.sharedDirectory.appendingPathComponent("data/xtb/ethanol-gfn2-nve-300K.nc")

    /// The two long MD runs (500 K stability, NVE conservation), started with the class
    /// (``BackgroundRun``) so that they run beside the IR test's three; nil when their files are absent.
    private static var stabilityRun: BackgroundRun?, conservationRun: BackgroundRun?
    static var stabilityPicoseconds: Int { ShippedModelChecks.fullValidation ? 100 : 20 }
    static let conservationDynamics = """
        integrator = "verlet"
        timestep_fs = 0.5
        steps = 20_000
        initial_temperature_K = 300
        seed = 5
        """

    override class func setUp() {
        super.setUp()
        let present = { (urls: [URL]) in urls.allSatisfy { FileManager.default.fileExists(atPath: $0.path) } }
        if present([energyModel, dataset]) {
            stabilityRun = try? BackgroundRun(deck: deck(dynamics: ShippedModelChecks.langevinAt500K(picoseconds: stabilityPicoseconds),
                                                         trajectoryEvery: 20), name: "ethanol-500K")
        }
        if present([energyModel]) {
            conservationRun = try? BackgroundRun(deck: deck(dynamics: conservationDynamics, trajectoryEvery: 1000), name: "ethanol-nve")
        }
    }

    override class func tearDown() {
        stabilityRun?.discard()
        conservationRun?.discard()
        super.tearDown()
    }

    func requireFiles(_ urls: URL...) throws {
        for url in urls where !FileManager.default.fileExists(atPath: url.path) {
            throw XCTSkip("\(url.path) is absent")
        }
    }

    static func splitIndices(_ key: String) throws -> [Int] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: split)) as? [String: Any]
        return (object?[key] as? [Int]) ?? []
    }

    // MARK: - Issue 6, point 3: accuracy on the 900 test frames of the published split

    /// Both energy models: the 1000-frame one the issue's point is about, and the MD model.
    func testEnergyModelsMeetTheTestSetTargets() throws {
        try requireFiles(Self.thousandFrameModel, Self.energyModel, Self.dataset, Self.split)
        let frames = try StructureFile.read(path: Self.dataset.path)
        let test = try Self.splitIndices("test")
        XCTAssertEqual(test.count, 900)
        let dir = try scratchDirectory("ethanol")
        let testFile = dir.appendingPathComponent("test.extxyz")
        try StructureFile.write(test.map { frames[$0] }, to: testFile.path)
        for model in [Self.thousandFrameModel, Self.energyModel] {
            let result = try CLI.run(["evaluate", "--model", model.path, "--data", testFile.path, "--json"], timeout: 300)
            XCTAssertEqual(result.status, 0, result.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let forceMAE = try XCTUnwrap(json["force_mae_meV_per_A"] as? Double)
            let energyMAE = try XCTUnwrap(json["energy_mae_meV_per_atom"] as? Double)
            XCTAssertEqual(json["frames"] as? Int, 900)
            print("ethanol test set, \(model.lastPathComponent): force MAE \(forceMAE) meV/Å, energy MAE \(energyMAE) meV/atom")
            XCTAssertLessThanOrEqual(forceMAE, 15, "force MAE on the test frames, \(model.lastPathComponent)")
            XCTAssertLessThanOrEqual(energyMAE, 0.5, "energy MAE on the test frames, \(model.lastPathComponent)")
        }
    }

    /// The shipped dipole model against the GFN2-xTB dipoles of the test frames. Its readout
    /// (μ = Σ mu_i + q_i (r_i − r_com)) was trained through the same code, so only a reference
    /// from outside the program sees a slip in it: a flipped sign gives twice |μ| per component.
    func testDipoleModelMatchesTheGFN2DipolesOfTheTestFrames() throws {
        try requireFiles(Self.dipoleModel, Self.dataset, Self.split)
        let frames = try StructureFile.read(path: Self.dataset.path)
        let test = try Self.splitIndices("test").prefix(300)
        let dir = try scratchDirectory("ethanol")
        let testFile = dir.appendingPathComponent("test.extxyz")
        try StructureFile.write(test.map { frames[$0] }, to: testFile.path)
        let result = try CLI.run(["evaluate", "--model", Self.dipoleModel.path, "--data", testFile.path, "--json"], timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let dipoleMAE = try XCTUnwrap(json["dipole_mae_eA"] as? Double)
        print("ethanol test frames, dipole model: dipole MAE \(dipoleMAE) e·Å per component")
        XCTAssertLessThan(dipoleMAE, 0.003, "dipole MAE per component on 300 test frames (trained to 0.00085)")
    }

    // MARK: - Issue 5, point 3, on the shipped model: an atom leaving every neighbour

    /// One H atom moved away from the molecule, along −z from its lowest atom (an H), so that
    /// its nearest neighbour is at d and every other atom farther: from 3 to 4.9 Å in 0.01 Å
    /// steps, then across the cutoff (5 Å) in 1e-4 Å steps. Every message that reaches the
    /// lone atom carries a cutoff function; the smooth norm divides that factor out until the
    /// vectors fall below √ε, so with ε = 1e-8 (the model shipped before 2026-12-07) the forces
    /// turned steep just inside the cutoff: 703 eV/Å at d = 4.9993 Å, a force changing by
    /// 132 eV/Å between neighbouring 1e-4 Å steps. The retrained model has ε = 1e-2: at most
    /// 0.74 eV/Å, changing by at most 1.4e-4 eV/Å per step (2026-12-07).
    func testAHydrogenLeavingTheMoleculeFeelsGentleForcesUpToTheCutoff() throws {
        try requireFiles(Self.energyModel)
        try ShippedModelChecks.assertGentleForcesOnALoneHydrogen(model: Self.energyModel, molecule: Self.examples.appendingPathComponent("ethanol.xyz"),
                                                   label: "ethanol", scratch: try scratchDirectory("ethanol"))
    }

    // MARK: - Issue 6, point 5: stability at 500 K and energy conservation

    /// A deck built from the shipped example's keys with the given dynamics table.
    static func deck(dynamics: String, trajectoryEvery: Int) -> String {
        """
        title = "ethanol check"
        [system]
        structure = "\(Self.examples.appendingPathComponent("ethanol.xyz").path)"
        [potential]
        type = "eninet"
        model = "\(Self.energyModel.path)"
        [dynamics]
        \(dynamics)
        [output]
        log = "log.csv"
        log_every = 100
        trajectory = "t.nc"
        trajectory_every = \(trajectoryEvery)
        """
    }

    /// The run's thermodynamic log, once it has ended (with status 0).
    func finishedLog(of run: BackgroundRun) throws -> (log: [[Double]], header: [String]) {
        let result = run.finish(timeout: 1200)
        XCTAssertEqual(result.status, 0, result.stderr)
        let dir = run.directory
        let lines = try String(contentsOf: dir.appendingPathComponent("log.csv"), encoding: .utf8).split(separator: "\n")
        let header = lines.first.map { $0.split(separator: ",").map(String.init) } ?? []
        let rows = lines.dropFirst().map { $0.split(separator: ",").map { Double($0) ?? .nan } }
        return (rows, header)
    }

    /// Fu et al. (2022), "Forces are not enough": a simulation is unstable once a bond length
    /// leaves its reference mean by more than 0.5 Å.
    func testLangevinAt500KKeepsEveryBondNearItsReferenceLength() throws {
        try requireFiles(Self.energyModel, Self.dataset)
        let stability = try BondStability(reference: Self.dataset)
        XCTAssertEqual(stability.bonds.count, 8, "ethanol has 8 bonds")

        let picoseconds = Self.stabilityPicoseconds
        let run = try XCTUnwrap(Self.stabilityRun, "the run did not start")
        _ = try finishedLog(of: run)
        let trajectory = try AmberTrajectoryReader(path: run.directory.appendingPathComponent("t.nc").path)
        XCTAssertEqual(trajectory.frameCount, picoseconds * 100 + 1, "\(picoseconds) ps stored every 10 fs")
        let worst = try stability.largestDeviation(in: trajectory)
        print("ethanol 500 K, \(picoseconds) ps: largest bond deviation \(worst.deviation) Å (atoms \(worst.bond), frame \(worst.frame))")
        XCTAssertLessThan(worst.deviation, 0.5, "bond \(worst.bond) left its reference mean by \(worst.deviation) Å at frame \(worst.frame)")
    }

    func testNVEAtHalfAFemtosecondConservesEnergy() throws {
        try requireFiles(Self.energyModel)
        let (rows, header) = try finishedLog(of: try XCTUnwrap(Self.conservationRun, "the run did not start"))
        let time = try XCTUnwrap(header.firstIndex { $0.hasPrefix("time") })
        let total = try XCTUnwrap(header.firstIndex { $0.hasPrefix("total") })
        let t: [Double] = rows.map { $0[time] / 1000 }, e: [Double] = rows.map { $0[total] / 9 }
        XCTAssertEqual(rows.count, 201)
        let slope = Self.leastSquaresSlope(x: t, y: e)
        let spread = (e.max() ?? 0) - (e.min() ?? 0)
        print("ethanol NVE 0.5 fs, 10 ps: drift \(slope) eV/atom/ps, total-energy range \(spread * 9) eV")
        XCTAssertLessThan(abs(slope), 1e-4, "drift in eV/atom/ps")
        XCTAssertTrue(e.allSatisfy(\.isFinite))
    }

    static func leastSquaresSlope(x: [Double], y: [Double]) -> Double {
        let xMean = x.reduce(0, +) / Double(x.count), yMean = y.reduce(0, +) / Double(y.count)
        var sxy = 0.0, sxx = 0.0
        for (a, b) in zip(x, y) {
            sxy += (a - xMean) * (b - yMean)
            sxx += (a - xMean) * (a - xMean)
        }
        return sxy / sxx
    }

    // MARK: - Issue 7, point 3: IR spectrum beside the GFN2-xTB reference

    /// The IR line shape as (wavenumber, intensity) from `eninet-md analyze ir`.
    func infrared(_ trajectory: URL, in dir: URL, name: String) throws -> [(Double, Double)] {
        let csv = dir.appendingPathComponent("\(name).csv")
        let result = try CLI.run(["analyze", "ir", trajectory.path, "--max-lag-fs", "1000", "--csv", csv.path], timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: ",")
            guard fields.count >= 2, let f = Double(fields[0]), let i = Double(fields[1]) else { return nil }
            return (f, i)
        }
    }

    /// The wavenumbers of the highest local maxima inside a band, highest first.
    static func peaks(_ spectrum: [(Double, Double)], in band: ClosedRange<Double>, count: Int) -> [Double] {
        let maxima = spectrum.indices.dropFirst().dropLast().filter { k in
            band.contains(spectrum[k].0) && spectrum[k].1 >= spectrum[k - 1].1 && spectrum[k].1 > spectrum[k + 1].1
        }
        return maxima.sorted { spectrum[$0].1 > spectrum[$1].1 }.prefix(count).map { spectrum[$0].0 }
    }

    func testInfraredPeaksMatchTheGFN2Reference() throws {
        try requireFiles(Self.energyModel, Self.dipoleModel, Self.referenceNVE)
        let dir = try scratchDirectory("ethanol")
        // The README's main job (Examples/ethanol/ethanol-md.toml, seed 1) and the same deck with
        // seeds 2 and 3, written to the scratch folder; their spectra are averaged. One 20 ps
        // run's O–H peak moves by about ±25 cm⁻¹ from seed to seed (3511, 3540 and 3561 for
        // seeds 3, 2 and 1), so a single run would test the draw as much as the model.
        let seeds = [1, 2, 3]
        var results = [CLI.Result?](repeating: nil, count: seeds.count)
        let deck = Self.examples.appendingPathComponent("ethanol-md.toml").path
        results.withUnsafeMutableBufferPointer { results in
            DispatchQueue.concurrentPerform(iterations: seeds.count) { k in
                let out = dir.appendingPathComponent("seed\(seeds[k])").path
                results[k] = try? CLI.run(["run", deck, "--quiet", "--set", "dynamics.seed=\(seeds[k])",
                                           "--set", "output.log=\(out).csv", "--set", "output.trajectory=\(out).nc",
                                           "--set", "output.restart=\(out).ncrst"], timeout: 1200)
            }
        }
        var runs: [[(Double, Double)]] = []
        for (seed, result) in zip(seeds, results) {
            XCTAssertEqual(result?.status, 0, "seed \(seed): \(result?.stderr ?? "did not start")")
            runs.append(try infrared(dir.appendingPathComponent("seed\(seed).nc"), in: dir, name: "model\(seed)"))
        }
        let grid = runs[0].map(\.0)
        XCTAssertTrue(runs.allSatisfy { $0.map(\.0) == grid }, "the runs' spectra are on different grids")
        let model = grid.indices.map { k in (grid[k], runs.reduce(0) { $0 + $1[k].1 } / Double(runs.count)) }
        let reference = try infrared(Self.referenceNVE, in: dir, name: "reference")
        // The bands of the strongest peaks: C–O stretch, C–H stretches, O–H stretch. In the C–H
        // band GFN2-xTB has two peaks of nearly equal height (near 2864 and 3015 cm⁻¹) and a
        // third at 0.6 of their height (2965); in 20 ps of ENINet MD the heights of the three,
        // and whether the middle one is resolved at all, change from one trajectory to the next
        // (with the seed, or with the last bits of a changed summation order). So each of the
        // reference's two tallest C–H peaks must have one of ENINet's three tallest within
        // 30 cm⁻¹; the C–O and O–H bands compare their single tallest peaks.
        for (name, band, count, candidates) in [("C–O stretch", 950.0...1200.0, 1, 1), ("C–H stretch", 2750.0...3150.0, 2, 3),
                                                ("O–H stretch", 3300.0...3900.0, 1, 1)] {
            let ours = Self.peaks(model, in: band, count: candidates).sorted(), theirs = Self.peaks(reference, in: band, count: count).sorted()
            print("IR \(name): ENINet \(ours) cm-1, GFN2-xTB \(theirs) cm-1")
            XCTAssertEqual(theirs.count, count, "\(name): the reference spectrum's peaks")
            for b in theirs {
                let nearest = ours.min { abs($0 - b) < abs($1 - b) }
                XCTAssertEqual(nearest ?? .infinity, b, accuracy: 30, "\(name): GFN2-xTB peak at \(b) cm-1, nearest ENINet peak \(String(describing: nearest))")
            }
        }
    }
}
