import XCTest
@testable import Analysis

final class CorrelationEngineTests: XCTestCase {
    /// The O(N²) definition, for comparison.
    private func bruteForce(_ x: [Double], _ y: [Double], maxLag: Int) -> [Double] {
        (0...maxLag).map { k in
            var s = 0.0
            for n in 0..<(x.count - k) { s += x[n] * y[n + k] }
            return s / Double(x.count - k)
        }
    }

    /// Both paddings, and the longest lag a series has (N − 1), against the definition.
    func testEveryPaddingIsExactUpToTheLongestLag() throws {
        var rng = SeededGenerator(seed: 12)
        let x = (0..<97).map { _ in rng.gaussian() + 1 }
        for padding in [CorrelationEngine.Padding.exactToMaxLag, .twiceLength] {
            for maxLag in [1, 30, 96] {
                let engine = try CorrelationEngine(length: 97, maxLag: maxLag, padding: padding)
                XCTAssertGreaterThanOrEqual(engine.paddedLength, padding == .twiceLength ? 194 : 97 + maxLag)
                let c = try engine.autocorrelation(x)
                let ref = bruteForce(x, x, maxLag: maxLag)
                for k in 0...maxLag { XCTAssertEqual(c[k], ref[k], accuracy: 1e-12 * ref[0], "\(padding) maxLag \(maxLag) lag \(k)") }
            }
        }
    }

    func testAutocorrelationEqualsUnbiasedDefinition() throws {
        var rng = SeededGenerator(seed: 1)
        let x = (0..<301).map { _ in rng.gaussian() + 0.3 }
        let engine = try CorrelationEngine(length: 301, maxLag: 120)
        XCTAssertGreaterThanOrEqual(engine.paddedLength, 421)
        let c = try engine.autocorrelation(x)
        let ref = bruteForce(x, x, maxLag: 120)
        for k in 0...120 { XCTAssertEqual(c[k], ref[k], accuracy: 1e-12 * abs(ref[0]), "lag \(k)") }
        // Mean subtraction correlates the fluctuations only.
        let mean = x.reduce(0, +) / Double(x.count)
        let dx = x.map { $0 - mean }
        let cm = try engine.autocorrelation(x, subtractMean: true)
        let refm = bruteForce(dx, dx, maxLag: 120)
        for k in 0...120 { XCTAssertEqual(cm[k], refm[k], accuracy: 1e-12 * refm[0], "lag \(k)") }
    }

    func testCrossCorrelationEqualsDefinition() throws {
        var rng = SeededGenerator(seed: 2)
        let x = (0..<200).map { _ in rng.gaussian() }
        let y = (0..<200).map { i in x[max(0, i - 7)] + 0.1 * rng.gaussian() }
        let engine = try CorrelationEngine(length: 200, maxLag: 50)
        let c = try engine.crossCorrelation(x, y)
        let ref = bruteForce(x, y, maxLag: 50)
        for k in 0...50 { XCTAssertEqual(c[k], ref[k], accuracy: 1e-12, "lag \(k)") }
        // y lags x by 7 samples, so the cross-correlation peaks there.
        XCTAssertEqual(c.indices.max { c[$0] < c[$1] }, 7)
    }

    /// Batched, weighted, grouped accumulation over a frame-major matrix with a partial last
    /// batch, on one and on two threads, equals the sum of per-series definitions.
    func testGroupedWeightedAccumulationMatchesDefinition() throws {
        var rng = SeededGenerator(seed: 3)
        let rows = 150, width = 37, maxLag = 40
        let matrix = (0..<(rows * width)).map { _ in rng.gaussian() }
        let weights = (0..<width).map { Double($0 % 5) * 0.5 }   // includes zero weights
        let groups = (0..<width).map { $0 % 3 }
        var expected = [[Double]](repeating: [Double](repeating: 0, count: maxLag + 1), count: 3)
        for c in 0..<width {
            let series = (0..<rows).map { matrix[$0 * width + c] }
            let r = bruteForce(series, series, maxLag: maxLag)
            for k in 0...maxLag { expected[groups[c]][k] += weights[c] * r[k] }
        }
        for threads in [1, 2] {
            let engine = try CorrelationEngine(length: rows, maxLag: maxLag, batchSize: 8)
            var power = [[Double]](repeating: [Double](repeating: 0, count: engine.binCount), count: 3)
            try matrix.withUnsafeBufferPointer {
                try engine.accumulatePower(matrix: $0, rowStride: width, columns: 0..<width, weights: weights,
                                           groups: groups, into: &power, threads: threads)
            }
            for g in 0..<3 {
                let c = try engine.correlation(fromPower: power[g])
                for k in 0...maxLag { XCTAssertEqual(c[k], expected[g][k], accuracy: 1e-11, "threads \(threads) group \(g) lag \(k)") }
            }
        }
    }

    /// A window of rows (block averaging) correlates only those rows.
    func testRowWindowUsesOnlyItsRows() throws {
        var rng = SeededGenerator(seed: 4)
        let x = (0..<400).map { _ in rng.gaussian() }
        let engine = try CorrelationEngine(length: 100, maxLag: 30)
        var power = [[Double](repeating: 0, count: engine.binCount)]
        try x.withUnsafeBufferPointer {
            try engine.accumulatePower(matrix: $0, rowStride: 1, firstRow: 200, columns: 0..<1, weights: [1], groups: [0], into: &power)
        }
        let c = try engine.correlation(fromPower: power[0])
        let ref = bruteForce(Array(x[200..<300]), Array(x[200..<300]), maxLag: 30)
        for k in 0...30 { XCTAssertEqual(c[k], ref[k], accuracy: 1e-12) }
        // The last valid window is accepted, one row further is refused.
        XCTAssertNoThrow(try x.withUnsafeBufferPointer {
            try engine.accumulatePower(matrix: $0, rowStride: 1, firstRow: 300, columns: 0..<1, weights: [1], groups: [0], into: &power)
        })
        XCTAssertThrowsError(try x.withUnsafeBufferPointer {
            try engine.accumulatePower(matrix: $0, rowStride: 1, firstRow: 301, columns: 0..<1, weights: [1], groups: [0], into: &power)
        })
    }

    func testFastLengthHasOnlySmallPrimeFactors() {
        XCTAssertEqual(CorrelationEngine.fastLength(atLeast: 20000), 20000)
        XCTAssertEqual(CorrelationEngine.fastLength(atLeast: 20002), 20160)
        XCTAssertEqual(CorrelationEngine.fastLength(atLeast: 11), 12)
    }

    func testWindowsStartAtOneAndTaperToTheEnd() {
        for w in Window.allCases {
            XCTAssertEqual(w.value(lag: 0, maxLag: 100), 1, accuracy: 1e-15, "\(w)")
        }
        XCTAssertEqual(Window.hann.value(lag: 100, maxLag: 100), 0, accuracy: 1e-15)
        XCTAssertEqual(Window.hann.value(lag: 50, maxLag: 100), 0.5, accuracy: 1e-15)
        XCTAssertEqual(Window.blackman.value(lag: 100, maxLag: 100), 0, accuracy: 1e-15)
        XCTAssertEqual(Window.gaussian.value(lag: 100, maxLag: 100), exp(-4.5), accuracy: 1e-15)
        XCTAssertEqual(Window.none.value(lag: 100, maxLag: 100), 1)
    }

    /// The cosine transform equals its definition evaluated directly, and its trapezoidal
    /// integral to Nyquist is C(0)/2 whatever the window.
    func testCosineTransformMatchesDefinitionAndKeepsNormalisation() throws {
        var rng = SeededGenerator(seed: 5)
        let c = (0...60).map { k in exp(-Double(k) / 15) * cos(Double(k) * 0.7) + 0.01 * rng.gaussian() }
        let dt = 0.5, points = 2 * 60 * 3
        for window in Window.allCases {
            let s = try CosineTransform.transform(c, window: window, points: points, sampleSpacing: dt)
            XCTAssertEqual(s.count, points / 2 + 1)
            let w = window.values(maxLag: 60)
            for k in [0, 1, 17, 90, 180] {
                var ref = w[0] * c[0]
                for j in 1...60 { ref += 2 * w[j] * c[j] * cos(2 * Double.pi * Double(k * j) / Double(points)) }
                XCTAssertEqual(s[k], ref * dt, accuracy: 1e-12, "\(window) bin \(k)")
            }
            let frequencySpacing = 1 / (Double(points) * dt)
            XCTAssertEqual(Quadrature.trapezoid(s, spacing: frequencySpacing), c[0] / 2, accuracy: 1e-12, "\(window)")
        }
    }
}
