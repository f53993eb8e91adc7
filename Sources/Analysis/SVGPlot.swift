import Foundation

/// A line plot written as a self-contained SVG file: labelled axes with units, ticks, a legend,
/// and shaded ±1 standard-error bands where a curve has errors. No dependencies.
public struct SVGPlot: Sendable {
    public struct Series: Sendable {
        public var label: String
        public var x: [Double]
        public var y: [Double]
        public var errors: [Double]?
        public init(label: String, x: [Double], y: [Double], errors: [Double]? = nil) {
            self.label = label
            self.x = x
            self.y = y
            self.errors = errors
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Horizontal lines (e.g. g(r) = 1), drawn dashed.
    public var referenceLines: [Double] = []
    public var width = 800.0
    public var height = 500.0

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    /// Plots every column of `table` after the first against the first; error columns
    /// (`*_stderr`) become bands of their curve.
    public init(table: DataTable, title: String, xLabel: String, yLabel: String) {
        var s: [Series] = []
        guard let xColumn = table.columns.first else {
            self.init(title: title, xLabel: xLabel, yLabel: yLabel, series: [])
            return
        }
        for c in table.columns.dropFirst() where !c.name.hasSuffix("_stderr") {
            let err = table.columns.first { $0.name == c.name + "_stderr" }?.values
            s.append(Series(label: c.name, x: xColumn.values, y: c.values, errors: err))
        }
        self.init(title: title, xLabel: xLabel, yLabel: yLabel, series: s)
    }

    private static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    /// Round tick positions covering `[lo, hi]`: multiples of 1, 2 or 5 × 10^k, 5 to 9 of them.
    static func ticks(_ lo: Double, _ hi: Double) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / 8
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw * (1 - 1e-9) } ?? 10 * mag
        let first = Int(ceil(lo / step - 1e-9)), last = Int(floor(hi / step + 1e-9))
        guard first <= last else { return [lo] }
        // Multiples of the step, rounded to 12 digits so that 3 × 0.2 prints as 0.6.
        return (first...last).map { i in
            let t = Double(i) * step
            return t == 0 ? 0 : Double(String(format: "%.12g", t)) ?? t
        }
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.2g", v) }
        return String(format: "%g", (v * 1e6).rounded() / 1e6)
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The SVG document.
    public func render() -> String {
        let left = 85.0, right = 20.0, top = 40.0, bottom = 60.0
        let pw = width - left - right, ph = height - top - bottom
        var xs: [Double] = [], ys: [Double] = []
        for s in series {
            for (i, x) in s.x.enumerated() where i < s.y.count && x.isFinite && s.y[i].isFinite {
                xs.append(x)
                ys.append(s.y[i])
                if let e = s.errors, i < e.count, e[i].isFinite {
                    ys.append(s.y[i] + e[i])
                    ys.append(s.y[i] - e[i])
                }
            }
        }
        ys.append(contentsOf: referenceLines)
        var x0 = xs.min() ?? 0, x1 = xs.max() ?? 1
        var y0 = min(ys.min() ?? 0, 0), y1 = ys.max() ?? 1
        if x1 <= x0 { x1 = x0 + 1 }
        if y1 <= y0 { y1 = y0 + 1 }
        let pad = 0.04 * (y1 - y0)
        y1 += pad
        if y0 < 0 { y0 -= pad }
        x0 = min(x0, x1)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        func f(_ v: Double) -> String { String(format: "%.2f", v) }

        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="13">
        <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="white"/>
        <text x="\(f(left + pw / 2))" y="24" text-anchor="middle" font-size="16">\(SVGPlot.escape(title))</text>

        """
        // Grid and ticks.
        for t in SVGPlot.ticks(x0, x1) {
            svg += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + ph))\" stroke=\"#e6e6e6\"/>\n"
            svg += "<text x=\"\(f(px(t)))\" y=\"\(f(top + ph + 18))\" text-anchor=\"middle\">\(SVGPlot.label(t))</text>\n"
        }
        for t in SVGPlot.ticks(y0, y1) {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(left + pw))\" y2=\"\(f(py(t)))\" stroke=\"#e6e6e6\"/>\n"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(py(t) + 4))\" text-anchor=\"end\">\(SVGPlot.label(t))</text>\n"
        }
        for r in referenceLines {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(r)))\" x2=\"\(f(left + pw))\" y2=\"\(f(py(r)))\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(pw))\" height=\"\(f(ph))\" fill=\"none\" stroke=\"black\"/>\n"
        svg += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(height - 15))\" text-anchor=\"middle\">\(SVGPlot.escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(20,\(f(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">\(SVGPlot.escape(yLabel))</text>\n"

        for (n, s) in series.enumerated() {
            let colour = SVGPlot.palette[n % SVGPlot.palette.count]
            let count = min(s.x.count, s.y.count)
            if let e = s.errors, e.count >= count, count > 1 {
                var pts: [String] = []
                for i in 0..<count where s.y[i].isFinite && e[i].isFinite { pts.append("\(f(px(s.x[i]))),\(f(py(s.y[i] + e[i])))") }
                for i in stride(from: count - 1, through: 0, by: -1) where s.y[i].isFinite && e[i].isFinite {
                    pts.append("\(f(px(s.x[i]))),\(f(py(s.y[i] - e[i])))")
                }
                svg += "<polygon points=\"\(pts.joined(separator: " "))\" fill=\"\(colour)\" fill-opacity=\"0.2\" stroke=\"none\"/>\n"
            }
            var pts: [String] = []
            pts.reserveCapacity(count)
            for i in 0..<count where s.x[i].isFinite && s.y[i].isFinite { pts.append("\(f(px(s.x[i]))),\(f(py(s.y[i])))") }
            svg += "<polyline points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.4\"/>\n"
            let ly = top + 18 + Double(n) * 18
            svg += "<line x1=\"\(f(left + pw - 150))\" y1=\"\(f(ly - 4))\" x2=\"\(f(left + pw - 125))\" y2=\"\(f(ly - 4))\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(f(left + pw - 118))\" y=\"\(f(ly))\">\(SVGPlot.escape(s.label))</text>\n"
        }
        svg += "</svg>\n"
        return svg
    }
}
