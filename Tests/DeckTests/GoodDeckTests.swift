import XCTest
@testable import Deck

/// Valid decks of every kind parse into the expected typed values.
final class GoodDeckTests: XCTestCase {
    private let structure = Fixtures.path("argon108.extxyz")
    private let model = Fixtures.path("model.safetensors")
    private let good = Fixtures.path("good")

    func testArgonNVE() throws {
        let s = try DeckLoader.load(path: Fixtures.path("good/argon-nve.toml"))
        XCTAssertEqual(s.format, .toml)
        XCTAssertEqual(s.title, "Argon, Lennard-Jones, NVE")
        XCTAssertEqual(s.task, .dynamics)
        XCTAssertEqual(s.deckPath, Fixtures.path("good/argon-nve.toml"))
        XCTAssertEqual(s.system, SystemSettings(structurePath: structure, replicate: SIMD3(1, 1, 1)))
        XCTAssertEqual(s.potential, .lennardJones(LennardJonesSettings(epsilonEV: 0.0104, sigmaA: 3.4, cutoffA: 8.5, truncation: .shift, skinA: 1.0)))
        XCTAssertEqual(s.dynamics, DynamicsSettings(integrator: .verlet, timestepFs: 2.0, steps: 5000, temperatureK: nil,
                                                    initialTemperatureK: 120, seed: 2024, seedFromClock: false,
                                                    removeCenterOfMassMotion: true))
        XCTAssertEqual(s.minimize, MinimizeSettings(maxSteps: 1000, fmaxEVPerA: 0.05))
        XCTAssertEqual(s.output, OutputSettings(logPath: good + "/out/argon-nve.log", logEvery: 100,
                                                trajectoryPath: good + "/out/argon-nve.nc", trajectoryEvery: 100,
                                                velocitiesEvery: 100, forcesEvery: 0,
                                                restartPath: good + "/out/argon-nve.ncrst", restartEvery: 1000,
                                                finalStructurePath: good + "/out/argon-nve-final.extxyz"))
        XCTAssertEqual(s.warnings, [])
    }

    func testArgonLangevin() throws {
        let s = try DeckLoader.load(path: Fixtures.path("good/argon-langevin.toml"))
        XCTAssertEqual(s.system.replicate, SIMD3(2, 2, 2))
        XCTAssertEqual(s.potential, .lennardJones(LennardJonesSettings(epsilonEV: 0.0104, sigmaA: 3.4, cutoffA: 8.5,
                                                                      truncation: .switched(startA: 7.5), skinA: 1.0)))
        XCTAssertEqual(s.dynamics.integrator, .langevin(frictionPerPs: 1.0))
        XCTAssertEqual(s.dynamics.integrator.frictionPerFs ?? 0, 0.001, accuracy: 1e-15)
        XCTAssertEqual(s.dynamics.steps, 10_000)
        XCTAssertEqual(s.dynamics.temperatureK, 120)
        XCTAssertEqual(s.dynamics.seed, 7)
        XCTAssertEqual(s.minimize, MinimizeSettings(maxSteps: 200, fmaxEVPerA: 0.01))
        XCTAssertEqual(s.output.trajectoryEvery, 50)
        XCTAssertEqual(s.output.logEvery, 200)
        XCTAssertNil(s.output.restartPath)
    }

    func testSumOfMorseAndHarmonicWithBussi() throws {
        let s = try DeckLoader.load(path: Fixtures.path("good/sum-bussi.toml"))
        XCTAssertEqual(s.potential, .sum([
            .morse(MorseSettings(depthEV: 0.0104, alphaPerA: 1.6, r0A: 3.8, cutoffA: 9.0, truncation: .none, skinA: 0.5)),
            .harmonic(HarmonicSettings(bonds: [HarmonicBond(i: 0, j: 1, kEVPerA2: 2.5, r0A: 3.8),
                                               HarmonicBond(i: 2, j: 3, kEVPerA2: 2.5, r0A: 3.8)],
                                       restraints: [HarmonicRestraint(atom: 4, kEVPerA2: 1.0, anchorA: SIMD3(0, 0, 0))])),
        ]))
        if case .sum(let terms) = s.potential, case .harmonic(let h) = terms[1] {
            XCTAssertEqual(h.maxAtomIndex, 4)
        } else {
            XCTFail("expected a sum with a harmonic term")
        }
        XCTAssertEqual(s.dynamics.integrator, .bussi(tauFs: 100))
        XCTAssertEqual(s.dynamics.temperatureK, 90)
        XCTAssertEqual(s.dynamics.steps, 0)
        XCTAssertTrue(s.dynamics.seedFromClock)
        XCTAssertLessThanOrEqual(s.dynamics.seed, UInt64(Int64.max))
        XCTAssertEqual(s.potential.maxAtomIndex, 4)
        XCTAssertEqual(s.summaryLines.last, "dynamics: bussi, 0 steps of 1.0 fs, target 90.0 K, tau 100.0 fs, seed \(s.dynamics.seed) (from clock)")
        XCTAssertEqual(s.output.dipoleEvery, 10)
        XCTAssertEqual(s.output.dipoleModelPath, model)
        XCTAssertEqual(s.output.trajectoryEvery, 10, "dipoles are stored in trajectory frames")
    }

    func testInlineTablesAndDottedKeysForMinimisation() throws {
        let s = try DeckLoader.load(path: Fixtures.path("good/eninet-minimize.toml"))
        XCTAssertEqual(s.task, .minimize)
        XCTAssertEqual(s.potential, .eninet(ENINetSettings(modelPath: model, precision: .double, skinA: 1.0)))
        XCTAssertEqual(s.minimize, MinimizeSettings(maxSteps: 500, fmaxEVPerA: 0.02))
        XCTAssertEqual(s.dynamics, DynamicsSettings())
        XCTAssertEqual(s.output.finalStructurePath, good + "/out/relaxed.extxyz")
        XCTAssertEqual(s.output.logEvery, 100)
    }

    func testOverridesAreValidatedAndResolvedFromCurrentDirectory() throws {
        let cwd = FileManager.default.currentDirectoryPath
        let s = try DeckLoader.load(path: Fixtures.path("good/argon-nve.toml"), overrides: [
            DeckOverride(key: "dynamics.steps", value: "10", source: "--steps"),
            try DeckOverride(assignment: "dynamics.integrator=langevin"),
            try DeckOverride(assignment: "dynamics.friction_per_ps = 5"),
            try DeckOverride(assignment: "dynamics.temperature_K=300"),
            try DeckOverride(assignment: "system.structure=\(structure)"),
            try DeckOverride(assignment: "output.log=somewhere/run.log"),
        ])
        XCTAssertEqual(s.dynamics.steps, 10)
        XCTAssertEqual(s.dynamics.integrator, .langevin(frictionPerPs: 5))
        XCTAssertEqual(s.dynamics.temperatureK, 300)
        XCTAssertEqual(s.output.logPath, (cwd as NSString).appendingPathComponent("somewhere/run.log"))

        XCTAssertThrowsError(try DeckLoader.load(path: Fixtures.path("good/argon-nve.toml"),
                                                 overrides: [DeckOverride(key: "dynamics.steps", value: "-5", source: "--steps")])) { e in
            XCTAssertEqual("\(e)", "--steps: key 'dynamics.steps' must not be negative (got -5)")
        }
        XCTAssertThrowsError(try DeckOverride(assignment: "dynamics.steps")) { e in
            XCTAssertTrue("\(e)".contains("key=value"), "\(e)")
        }
    }
}
