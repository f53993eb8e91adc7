import Foundation
import Geometry
import Tensors
import Training
import XCTest

final class ScheduleAndMetricsTests: XCTestCase {
    /// Warm-up is linear to the base rate; after `patience` stalled epochs the rate halves, never below the floor.
    func testScheduleWarmupPlateauAndFloor() {
        var s = LearningRateSchedule(base: 1e-3, warmupSteps: 4, factor: 0.5, patience: 2, minimum: 3e-4)
        XCTAssertEqual(s.rate(step: 0), 2.5e-4, accuracy: 1e-15)
        XCTAssertEqual(s.rate(step: 3), 1e-3, accuracy: 1e-15)
        XCTAssertEqual(s.rate(step: 100), 1e-3, accuracy: 1e-15)
        s.record(validationLoss: 1.0)
        s.record(validationLoss: 0.99999)   // below the 1e-4 relative threshold: stalled
        s.record(validationLoss: 1.0)
        XCTAssertEqual(s.rate(step: 100), 1e-3, accuracy: 1e-15, "two stalled epochs are within patience 2")
        s.record(validationLoss: 1.0)
        XCTAssertEqual(s.rate(step: 100), 5e-4, accuracy: 1e-15)
        for _ in 0..<9 { s.record(validationLoss: 1.0) }
        XCTAssertEqual(s.rate(step: 100), 3e-4, accuracy: 1e-15, "floor")
        s.record(validationLoss: 0.5)
        XCTAssertEqual(s.epochsWithoutImprovement, 0)
    }

    /// The average follows `w̄ ← d w̄ + (1 − d) w` with the ramped decay, and swapping it in is undone.
    func testMovingAverage() throws {
        let w = try Tensor<Double>(shape: [2], scalars: [0, 0], requiresGrad: true)
        var ema = ExponentialMovingAverage(decay: 0.5, parameters: [w])
        try w.assign([1, 2])
        ema.update([w])                      // d = min(0.5, 1/10) = 0.1
        XCTAssertEqual(ema.shadow[0][0], 0.9, accuracy: 1e-15)
        XCTAssertEqual(ema.shadow[0][1], 1.8, accuracy: 1e-15)
        let inside = try ema.withAveragedWeights([w]) { w.scalars }
        XCTAssertEqual(inside, [0.9, 1.8])
        XCTAssertEqual(w.scalars, [1, 2])
    }

    /// MAE/RMSE in meV from known errors; the JSON keys `evaluate --data --json` promises.
    func testMetricsNumbersAndKeys() throws {
        var m = ErrorMetrics()
        // Two 2-atom frames: energy errors +0.02 and −0.04 eV (per atom 0.01, −0.02).
        m.add(atomicNumbers: [1, 8], energy: 1.02, reference: 1, forces: [Vec3(0.1, 0, 0), .zero], referenceForces: [.zero, .zero],
              dipole: nil, referenceDipole: nil)
        m.add(atomicNumbers: [1, 1], energy: 0.96, reference: 1, forces: [.zero, Vec3(0, -0.3, 0)], referenceForces: [.zero, .zero],
              dipole: nil, referenceDipole: nil)
        XCTAssertEqual(m.energyMAEmeVPerAtom ?? 0, 15, accuracy: 1e-9)
        XCTAssertEqual(m.energyRMSEmeVPerAtom ?? 0, (0.5 * (100.0 + 400.0)).squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(m.forceMAEmeVPerA ?? 0, 400.0 / 12, accuracy: 1e-9)
        XCTAssertEqual(m.forceRMSEmeVPerA ?? 0, (1e5 / 12).squareRoot(), accuracy: 1e-9)
        let oxygen = m.perElement.first { $0.atomicNumber == 8 }
        XCTAssertEqual(oxygen?.forceMAE ?? -1, 0, accuracy: 1e-12)
        XCTAssertEqual(oxygen?.energyMAE ?? -1, 10, accuracy: 1e-9)
        let json = try JSONSerialization.jsonObject(with: Data(m.jsonString().utf8)) as? [String: Any]
        XCTAssertEqual(Set(json?.keys.map { $0 } ?? []), ["energy_mae_meV_per_atom", "energy_rmse_meV_per_atom", "force_mae_meV_per_A",
                                                          "force_rmse_meV_per_A", "frames"])
        XCTAssertTrue(m.paritySVG().hasPrefix("<svg"))

        // A dipole model: errors (0.03, 0, −0.04) and (0, 0, 0) e·Å, per component. The RMSE was
        // printed as text but left out of the JSON.
        var d = ErrorMetrics()
        d.add(atomicNumbers: [1, 8], energy: nil, reference: 0, forces: nil, referenceForces: [],
              dipole: Vec3(0.13, 0.2, 0.26), referenceDipole: Vec3(0.1, 0.2, 0.3))
        d.add(atomicNumbers: [1, 8], energy: nil, reference: 0, forces: nil, referenceForces: [],
              dipole: Vec3(0.1, 0.2, 0.3), referenceDipole: Vec3(0.1, 0.2, 0.3))
        let dipoleJSON = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(d.jsonString().utf8)) as? [String: Any])
        XCTAssertEqual(Set(dipoleJSON.keys), ["dipole_mae_eA", "dipole_rmse_eA", "frames"])
        XCTAssertEqual(try XCTUnwrap(dipoleJSON["dipole_mae_eA"] as? Double), 0.07 / 6, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(dipoleJSON["dipole_rmse_eA"] as? Double), (0.0025 / 6).squareRoot(), accuracy: 1e-12)
    }
}
