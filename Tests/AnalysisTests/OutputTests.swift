import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Analysis

final class OutputTests: XCTestCase {
    /// An analysis output at a symbolic link rewrites the file the link names and keeps its
    /// mode, as restarts and trajectories do (one shared replace-by-rename).
    func testAnOutputThroughALinkRewritesTheFileItNames() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: dir + "/elsewhere", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        try AtomicFile.write("old\n", to: dir + "/elsewhere/out.csv")
        try fm.setAttributes([.posixPermissions: 0o640], ofItemAtPath: dir + "/elsewhere/out.csv")
        try fm.createSymbolicLink(atPath: dir + "/link.csv", withDestinationPath: dir + "/elsewhere/out.csv")
        try AtomicFile.write("new\n", to: dir + "/link.csv")
        XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: dir + "/link.csv"), dir + "/elsewhere/out.csv")
        XCTAssertEqual(try String(contentsOfFile: dir + "/elsewhere/out.csv", encoding: .utf8), "new\n")
        XCTAssertEqual((try fm.attributesOfItem(atPath: dir + "/elsewhere/out.csv")[.posixPermissions] as? NSNumber)?.intValue, 0o640)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: dir + "/elsewhere"), ["out.csv"], "no temporary file left")
    }

    /// A table and its plot are written together or not at all: a plot that cannot be created
    /// (here its temporary name is taken by a directory; under `/proc` as root the same) left a
    /// new table beside an old plot.
    func testATableAndItsPlotAreWrittenTogetherOrNotAtAll() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("atomic-pair-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: dir) }
        try AtomicFile.writeAll([("old table\n", dir + "/t.csv"), ("old plot\n", dir + "/t.svg")])
        try fm.createDirectory(atPath: dir + "/t.svg.tmp-\(getpid())", withIntermediateDirectories: false)
        XCTAssertThrowsError(try AtomicFile.writeAll([("new table\n", dir + "/t.csv"), ("new plot\n", dir + "/t.svg")])) { error in
            XCTAssertTrue("\(error)".contains("t.svg"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOfFile: dir + "/t.csv", encoding: .utf8), "old table\n")
        XCTAssertEqual(try String(contentsOfFile: dir + "/t.svg", encoding: .utf8), "old plot\n")
        try? fm.removeItem(atPath: dir + "/t.svg.tmp-\(getpid())")  // the failed write has removed it already
        XCTAssertEqual(Set(try fm.contentsOfDirectory(atPath: dir)), ["t.csv", "t.svg"], "no temporary file left")
        try AtomicFile.writeAll([("new table\n", dir + "/t.csv"), ("new plot\n", dir + "/t.svg")])
        XCTAssertEqual(try String(contentsOfFile: dir + "/t.csv", encoding: .utf8), "new table\n")
        XCTAssertEqual(try String(contentsOfFile: dir + "/t.svg", encoding: .utf8), "new plot\n")
    }

    func testCSVHeaderNamesUnitsAndValuesRoundTrip() throws {
        let x = (0..<50).map { Double($0) * 4.1695 }
        let y = x.map { exp(-$0 / 70) * 1.234567890123e-3 }
        let spectrum = Spectrum(frequencies: x, curves: [Curve(name: "vdos_total", values: y, errors: y.map { $0 * 0.1 })],
                                unit: "per_cm-1", spacing: 4.1695, resolution: 16.7, nyquist: 16678)
        let csv = spectrum.table.csv()
        let lines = csv.split(separator: "\n")
        XCTAssertEqual(lines.first, "frequency_cm-1,vdos_total_per_cm-1,vdos_total_stderr_per_cm-1")
        XCTAssertEqual(lines.count, 51)
        for (k, line) in lines.dropFirst().enumerated() {
            let cells = line.split(separator: ",").compactMap { Double($0) }
            XCTAssertEqual(cells.count, 3)
            XCTAssertEqual(cells[0], x[k], accuracy: 1e-11 * max(1, x[k]))
            XCTAssertEqual(cells[1], y[k], accuracy: 1e-11 * y[k])
        }
    }

    /// The plot is well-formed XML with the title, both axis labels, a legend entry per
    /// curve, one line per curve with one point per value, and an error band.
    func testSVGIsWellFormedAndLabelled() throws {
        let x = (0..<200).map { Double($0) * 0.05 }
        let table = DataTable(columns: [
            .init(name: "r", unit: "A", values: x),
            .init(name: "g_O-H", unit: "1", values: x.map { 1 + sin($0) }),
            .init(name: "g_O-H_stderr", unit: "1", values: x.map { _ in 0.05 }),
            .init(name: "g_H-H", unit: "1", values: x.map { 1 + 0.5 * cos($0) }),
        ])
        var plot = SVGPlot(table: table, title: "RDF <water> & ice", xLabel: "r (Å)", yLabel: "g(r)")
        plot.referenceLines = [1]
        let svg = plot.render()
        final class Collector: NSObject, XMLParserDelegate {
            var elements: [String: Int] = [:]
            var text = ""
            var polylinePoints: [Int] = []
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                elements[name, default: 0] += 1
                if name == "polyline" { polylinePoints.append(attributes["points"]?.split(separator: " ").count ?? 0) }
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
        }
        let collector = Collector()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = collector
        XCTAssertTrue(parser.parse(), "SVG is not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "")")
        XCTAssertEqual(collector.elements["svg"], 1)
        XCTAssertEqual(collector.polylinePoints, [200, 200])
        XCTAssertEqual(collector.elements["polygon"], 1)   // the error band of g_O-H
        for label in ["RDF <water> & ice", "r (Å)", "g(r)", "g_O-H", "g_H-H"] {
            XCTAssertTrue(collector.text.contains(label), "missing text \(label)")
        }
    }

    func testTicksAreRoundAndCoverTheRange() {
        XCTAssertEqual(SVGPlot.ticks(0, 4000), [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000])
        XCTAssertEqual(SVGPlot.ticks(0.01, 5.41), [1, 2, 3, 4, 5])
        XCTAssertEqual(SVGPlot.ticks(-0.2, 1.1), [-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1.0])
    }
}
