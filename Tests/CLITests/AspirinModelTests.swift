import Foundation
import XCTest
import Geometry
import Trajectory
import Training

/// The shipped aspirin model for MD (`Examples/aspirin/energy-stable`, fine-tuned from
/// `energy/` with ε = 1e-2 by `train-energy-stable.toml`): gentle forces on an atom leaving the
/// molecule, and bonds near their GFN2-xTB means at 500 K. The 500 K run is 10 ps in the
/// default suite and 100 ps with `ENINETMD_FULL_VALIDATION=1`.
final class AspirinModelTests: XCTestCase {
    static let examples = CLI.repositoryRoot.appendingPathComponent("Examples/aspirin")
    static let energyModel = examples.appendingPathComponent("energy-stable/aspirin-energy-stable.safetensors")
    static let molecule = examples.appendingPathComponent("aspirin.xyz")
    static let dataset = CLI.sharedDirectory.appendingPathComponent("data/xtb/aspirin-gfn2-500K.extxyz")
    static var stabilityPicoseconds: Int { ShippedModelChecks.fullValidation ? 100 : 10 }
    /// The 500 K run, started with the class (``BackgroundRun``) so that it runs beside the
    /// class's other tests; nil when the data is absent.
    private static var stabilityRun: BackgroundRun?

    override class func setUp() {
        super.setUp()
        guard FileManager.default.fileExists(atPath: dataset.path) else { return }
        stabilityRun = try? BackgroundRun(deck: """
            [system]
            structure = "\(molecule.path)"
            [potential]
            type = "eninet"
            model = "\(energyModel.path)"
            [dynamics]
            \(ShippedModelChecks.langevinAt500K(picoseconds: stabilityPicoseconds))
            [output]
            log_every = 0
            trajectory = "t.nc"
            trajectory_every = 20
            """, name: "aspirin-500K")
    }

    override class func tearDown() {
        stabilityRun?.discard()
        super.tearDown()
    }

    /// Both models on the 900 test frames of the configurations' split (random, seed 1: 1000
    /// training, 100 validation frames), drawn as `train` draws it. Measured on 2026-12-07:
    /// `energy-stable/` 19.95 meV/Å and 0.293 meV/atom, `energy/` 35.8 and 0.843; the bounds
    /// leave about 5 % for Float rounding and a retrain's spread, and keep the two apart.
    func testBothModelsOnTheTestFramesOfTheirSplit() throws {
        let model = Self.examples.appendingPathComponent("energy/aspirin-energy.safetensors")
        guard FileManager.default.fileExists(atPath: Self.dataset.path) else { throw XCTSkip("\(Self.dataset.path) is absent") }
        let frames = try StructureFile.read(path: Self.dataset.path)
        let split = try DatasetSplit.random(frameCount: frames.count, train: 1000, validation: 100, test: nil, seed: 1)
        XCTAssertEqual(split.test.count, 900)
        let testFile = try scratchDirectory("aspirin").appendingPathComponent("test.extxyz")
        try StructureFile.write(split.test.map { frames[$0] }, to: testFile.path)
        for (model, forceBound, energyBound) in [(Self.energyModel, 21.0, 0.31), (model, 37.5, 0.89)] {
            let result = try CLI.run(["evaluate", "--model", model.path, "--data", testFile.path, "--json"], timeout: 300)
            XCTAssertEqual(result.status, 0, result.stderr)
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let forceMAE = try XCTUnwrap(json["force_mae_meV_per_A"] as? Double)
            let energyMAE = try XCTUnwrap(json["energy_mae_meV_per_atom"] as? Double)
            print("aspirin test set, \(model.lastPathComponent): force MAE \(forceMAE) meV/Å, energy MAE \(energyMAE) meV/atom")
            XCTAssertLessThanOrEqual(forceMAE, forceBound, model.lastPathComponent)
            XCTAssertLessThanOrEqual(energyMAE, energyBound, model.lastPathComponent)
        }
    }

    /// `energy/`'s file (ε = 1e-8) pushed the departing H with 27 eV/Å at 4.9991 Å; this one
    /// with at most 0.062 eV/Å (2026-12-07).
    func testAHydrogenLeavingTheMoleculeFeelsGentleForcesUpToTheCutoff() throws {
        try ShippedModelChecks.assertGentleForcesOnALoneHydrogen(model: Self.energyModel, molecule: Self.molecule, label: "aspirin",
                                                                scratch: try scratchDirectory("aspirin"))
    }

    /// Fu et al. (2022), "Forces are not enough": no bond leaves its mean in the GFN2-xTB data by
    /// more than 0.5 Å. By hand over 100 ps: 0.256–0.343 Å in seeds 11–16; `energy/` gave 0.29 Å
    /// (seed 11), and a model retrained from scratch with ε = 1e-2 0.43 Å (Docs/training.md).
    func testLangevinAt500KKeepsEveryBondNearItsReferenceLength() throws {
        guard FileManager.default.fileExists(atPath: Self.dataset.path) else { throw XCTSkip("\(Self.dataset.path) is absent") }
        let stability = try BondStability(reference: Self.dataset)
        XCTAssertEqual(stability.bonds.count, 21, "aspirin has 21 bonds")

        let picoseconds = Self.stabilityPicoseconds
        let run = try XCTUnwrap(Self.stabilityRun, "the run did not start")
        let result = run.finish(timeout: 1800)
        XCTAssertEqual(result.status, 0, result.stderr)
        let trajectory = try AmberTrajectoryReader(path: run.directory.appendingPathComponent("t.nc").path)
        XCTAssertEqual(trajectory.frameCount, picoseconds * 100 + 1)
        let worst = try stability.largestDeviation(in: trajectory)
        print("aspirin 500 K, \(picoseconds) ps: largest bond deviation \(worst.deviation) Å (atoms \(worst.bond), frame \(worst.frame))")
        XCTAssertLessThan(worst.deviation, 0.5, "bond \(worst.bond) left its reference mean by \(worst.deviation) Å at frame \(worst.frame)")
    }
}
