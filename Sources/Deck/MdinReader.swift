import Foundation

/// One value in a Fortran namelist.
enum NamelistValue {
    case integer(Int64)
    case real(Double)
    case string(String)
    case logical(Bool)
}

/// One `key = value[, value...]` entry of a namelist group.
struct NamelistEntry {
    var group: String
    /// Lower-cased key (namelists are case-insensitive).
    var key: String
    /// The key as written, for messages.
    var written: String
    var values: [NamelistValue]
    /// The values as written, for messages.
    var text: String
    var line: Int
}

/// Reads an AMBER-style `mdin` (title line, `&cntrl ... /`, optional
/// `&eninetmd ... /`) and translates it into the same tree a TOML deck
/// produces, each value remembering the AMBER key and line it came from.
final class MdinReader {
    let file: String
    let baseDirectory: String
    private(set) var warnings: [String] = []

    init(file: String, baseDirectory: String) {
        self.file = file
        self.baseDirectory = baseDirectory
    }

    /// How to supply canonical keys that an mdin deck lacks.
    static let missingHints: [String: String] = [
        "system.structure": "give structure='file.extxyz' in an &eninetmd group (or on the command line)",
        "potential.type": "give potential='lj' (or 'morse', 'eninet', 'external', 'ipi') and its parameters in an &eninetmd group",
        "dynamics.friction_per_ps": "ntt = 3 (Langevin) needs gamma_ln > 0 (ps^-1) in &cntrl",
        "output.trajectory": "give trajectory='file.nc' in &eninetmd",
        "output.restart": "give restart='file.ncrst' in &eninetmd",
        "output.dipole_model": "give dipole_model='file' in &eninetmd",
    ]

    /// AMBER keys that change nothing here; accepted with a warning.
    static let ignoredKeys: Set<String> = [
        "ntx", "irest", "ntxo", "ioutfm", "iwrap", "ntwe", "ntave", "ntb", "nscm", "ntmin", "ncyc", "drms",
        "ntrx", "ntwprt", "idecomp", "taup", "comp", "tol", "jfastw", "vlimit", "ntf",
        "ntc", "igb", "ntr", "nmropt", "iphmd", "icnstph", "ifqnt",
    ]

    private static let minimiser = "the minimiser is FIRE, stopped by fmax_eV_per_A in &eninetmd"
    private static let restartFlag = "a run continues from a restart with eninet-md run --restart FILE"

    /// What takes the place of ignored keys that do mean something in AMBER.
    static let ignoredBecause: [String: String] = [
        "ntb": "periodicity comes from the structure file's cell and pbc",
        "nscm": "centre-of-mass motion is removed from the initial velocities only",
        "iwrap": "coordinates are always written unwrapped",
        "ntmin": minimiser, "ncyc": minimiser, "drms": minimiser,
        "ntx": restartFlag, "irest": restartFlag,
        "taup": "it is the Berendsen barostat's; the Monte Carlo barostat (barostat = 2) has none",
        "comp": "the compressibility sets the Berendsen barostat's coupling; the Monte Carlo barostat (barostat = 2) needs none",
    ]

    /// Ignored keys that would change the physics unless they hold this value.
    static let requiredValues: [String: (value: Int64, reason: String)] = [
        "ntc": (1, "SHAKE constraints are not supported; use ntc = 1 with a smaller dt"),
        "ntf": (1, "force omission with SHAKE is not supported; use ntf = 1"),
        "igb": (0, "implicit solvent is not supported; use igb = 0"),
        "ntr": (0, "AMBER positional restraints are not supported; use a harmonic potential in a TOML deck"),
        "nmropt": (0, "NMR restraints and weight changes are not supported; use nmropt = 0"),
        "iphmd": (0, "constant pH is not supported"),
        "icnstph": (0, "constant pH is not supported"),
        "ifqnt": (0, "QM/MM is not supported"),
    ]

    static let cntrlKeys = ["imin", "nstlim", "dt", "ntt", "gamma_ln", "temp0", "tempi", "ig", "tautp",
                            "ntp", "barostat", "pres0", "mcbarint",
                            "ntpr", "ntwx", "ntwv", "ntwf", "ntwr", "cut", "maxcyc"]

    /// `&eninetmd` key (lower case) → canonical key.
    static let eninetKeys: [String: String] = [
        "structure": "system.structure",
        "replicate": "system.replicate",
        "potential": "potential.type",
        "epsilon_ev": "potential.epsilon_eV",
        "sigma_a": "potential.sigma_A",
        "cutoff_a": "potential.cutoff_A",
        "truncation": "potential.truncation",
        "switch_start_a": "potential.switch_start_A",
        "skin_a": "potential.skin_A",
        "d_ev": "potential.D_eV",
        "alpha_per_a": "potential.alpha_per_A",
        "r0_a": "potential.r0_A",
        "model": "potential.model",
        "precision": "potential.precision",
        "command": "potential.command",
        "timeout_s": "potential.timeout_s",
        "address": "potential.address",
        "remove_com_motion": "dynamics.remove_com_motion",
        "fmax_ev_per_a": "minimize.fmax_eV_per_A",
        "log": "output.log",
        "trajectory": "output.trajectory",
        "restart": "output.restart",
        "final_structure": "output.final_structure",
        "dipole_every": "output.dipole_every",
        "dipole_model": "output.dipole_model",
    ]

    /// `&eninetmd` keys spelt as in the TOML deck (`sigma_A`), for suggestions.
    static var eninetDisplayNames: [String] {
        eninetKeys.map { key, canonical in
            let last = canonical.split(separator: ".").last.map(String.init) ?? key
            return last.lowercased() == key ? last : key
        }.sorted()
    }

    func read(_ text: String) throws -> TOMLTable {
        let (title, groups, cntrlLine) = try parseNamelists(text)
        let root = TOMLTable()
        var cntrl: [String: NamelistEntry] = [:]
        for entry in groups where entry.group == "cntrl" { cntrl[entry.key] = entry }

        if !title.isEmpty {
            root.set("title", TOMLNode(value: .string(title), line: 1))
        }

        func put(_ key: String, _ value: TOMLValue, from entry: NamelistEntry) throws {
            let origin = ValueOrigin(file: file, line: entry.line, key: entry.written, text: entry.text, baseDirectory: baseDirectory)
            try insert(key, TOMLNode(value: value, line: entry.line, origin: origin), into: root, entry: entry)
        }
        func putDefault(_ key: String, _ value: TOMLValue, amberKey: String, text: String) {
            let origin = ValueOrigin(file: file, line: cntrlLine, key: amberKey, text: text + " (AMBER default)", baseDirectory: baseDirectory)
            setPath(key, TOMLNode(value: value, line: cntrlLine, origin: origin), in: root)
        }

        // imin and ntt decide how the other keys are read.
        var minimise = false
        if let e = cntrl["imin"] {
            switch try integer(e) {
            case 0: minimise = false
            case 1: minimise = true
            default: throw error(e, "key '\(e.written)' must be 0 (molecular dynamics) or 1 (minimisation) (got \(e.text))")
            }
            try put("task", .string(minimise ? "minimize" : "md"), from: e)
        }
        // AMBER reads the dynamics keys only when it runs dynamics: under imin = 1 they are
        // ignored (with a word), not checked as if an MD run were to follow.
        let dynamicsOnly: Set = ["nstlim", "dt", "ntt", "gamma_ln", "temp0", "tempi", "ig", "tautp",
                                 "ntp", "barostat", "pres0", "mcbarint"]
        if minimise {
            for key in dynamicsOnly.sorted() {
                if let e = cntrl.removeValue(forKey: key) { ignored(e, "imin = 1 minimises; it is read for dynamics only") }
            }
        }
        var ntt: Int64 = 0
        if let e = cntrl["ntt"] {
            ntt = try integer(e)
            let integrator: String
            switch ntt {
            case 0: integrator = "verlet"
            case 3: integrator = "langevin"
            case 11: integrator = "bussi"
            default:
                throw error(e, "key '\(e.written)' = \(e.text) is not supported (supported: 0 = NVE velocity Verlet, 3 = Langevin, 11 = Bussi)")
            }
            try put("dynamics.integrator", .string(integrator), from: e)
        }
        let thermostat = ntt == 3 || ntt == 11
        // ntp = 1 (isotropic) or 2 (anisotropic) with barostat = 2 is AMBER's Monte Carlo barostat, the only one here.
        var ntp: Int64 = 0
        if let e = cntrl["ntp"] {
            ntp = try integer(e)
            switch ntp {
            case 0: break
            case 1, 2:
                let barostat = try cntrl["barostat"].map(integer) ?? 1
                guard barostat == 2 else {
                    let given = barostat == 1 ? "barostat = 1 (Berendsen, AMBER's default)" : "barostat = \(barostat)"
                    throw error(cntrl["barostat"] ?? e, "ntp = \(ntp) needs barostat = 2 (Monte Carlo); \(given) is not supported")
                }
                try put("dynamics.barostat", .string("montecarlo"), from: e)
                if ntp == 2 { try put("dynamics.barostat_coupling", .string("anisotropic"), from: e) }
            default:
                throw error(e, "key '\(e.written)' = \(e.text) is not supported (supported: 0 = constant volume, 1 = isotropic and 2 = anisotropic pressure with barostat = 2)")
            }
        }
        var ntwx: Int64 = 0
        if let e = cntrl["ntwx"] { ntwx = try integer(e) }

        for entry in groups {
            switch entry.group {
            case "cntrl":
                if minimise && dynamicsOnly.contains(entry.key) { continue }
                try mapCntrl(entry, ntt: ntt, ntp: ntp, ntwx: ntwx, put: put)
            case "eninetmd":
                guard let key = MdinReader.eninetKeys[entry.key] else {
                    var message = "unknown key '\(entry.written)' in &eninetmd"
                    if let near = nearest(entry.key, in: MdinReader.eninetDisplayNames) { message += "; did you mean '\(near)'?" }
                    throw error(entry, message)
                }
                try put(key, value(entry), from: entry)
            default:
                warnings.append(DeckError(file: file, line: entry.line, message: "warning: &\(entry.group) is ignored").description)
            }
        }

        // AMBER defaults for what the deck leaves out, so an mdin that AMBER accepts means the same here.
        if !minimise {
            if cntrl["nstlim"] == nil { putDefault("dynamics.steps", .integer(1), amberKey: "nstlim", text: "1") }
            if cntrl["dt"] == nil { putDefault("dynamics.timestep_fs", .float(1.0), amberKey: "dt", text: "0.001") }
        }
        if thermostat && cntrl["temp0"] == nil {
            putDefault("dynamics.temperature_K", .float(300), amberKey: "temp0", text: "300.0")
        }
        if ntt == 11 && cntrl["tautp"] == nil {
            putDefault("dynamics.tau_fs", .float(1000), amberKey: "tautp", text: "1.0")
        }
        if ntp != 0 && !minimise {
            if cntrl["pres0"] == nil { putDefault("dynamics.pressure_bar", .float(1.0), amberKey: "pres0", text: "1.0") }
            if cntrl["mcbarint"] == nil { putDefault("dynamics.barostat_every", .integer(100), amberKey: "mcbarint", text: "100") }
        }
        if cntrl["ntpr"] == nil { putDefault("output.log_every", .integer(50), amberKey: "ntpr", text: "50") }
        // AMBER writes no coordinates without ntwx, whatever file -x names; a trajectory named
        // in &eninetmd got the TOML deck's stride of 100 instead.
        if cntrl["ntwx"] == nil {
            putDefault("output.trajectory_every", .integer(0), amberKey: "ntwx", text: "0")
            if let named = groups.first(where: { $0.group == "eninetmd" && $0.key == "trajectory" }) {
                warnings.append(DeckError(file: file, line: named.line, message:
                    "warning: '\(named.written)' is given but ntwx is not: AMBER's default ntwx = 0 writes no frames (set ntwx to a stride)").description)
            }
        }
        dropCutForPotentialsWithoutCutoff(root)
        return root
    }

    private func mapCntrl(_ e: NamelistEntry, ntt: Int64, ntp: Int64, ntwx: Int64,
                                   put: (String, TOMLValue, NamelistEntry) throws -> Void) throws {
        switch e.key {
        case "imin", "ntt", "ntp":
            break
        case "barostat":
            if ntp == 0 { ignored(e, "only used with ntp = 1 or 2") }
        case "pres0":
            if ntp != 0 { try put("dynamics.pressure_bar", value(e), e) } else { ignored(e, "only used with ntp = 1 or 2") }
        case "mcbarint":
            if ntp != 0 { try put("dynamics.barostat_every", value(e), e) } else { ignored(e, "only used with ntp = 1 or 2") }
        case "nstlim": try put("dynamics.steps", value(e), e)
        case "dt":
            guard case .some(let dt) = number(e) else { throw error(e, "key '\(e.written)' must be a number in ps (got \(e.text))") }
            // In fs it passed Double's range and was called "not finite", which 1e306 is.
            guard (dt * 1000).isFinite else { throw error(e, "key '\(e.written)' = \(e.text) ps is too large a timestep") }
            try put("dynamics.timestep_fs", .float(dt * 1000), e)
        case "gamma_ln":
            if ntt == 3 { try put("dynamics.friction_per_ps", value(e), e) } else { ignored(e, "only used with ntt = 3") }
        case "temp0":
            if ntt == 3 || ntt == 11 { try put("dynamics.temperature_K", value(e), e) } else { ignored(e, "only used with a thermostat (ntt = 3 or 11)") }
        case "tautp":
            if ntt == 11 {
                guard case .some(let tau) = number(e) else { throw error(e, "key '\(e.written)' must be a number in ps (got \(e.text))") }
                try put("dynamics.tau_fs", .float(tau * 1000), e)
            } else {
                ignored(e, "only used with ntt = 11")
            }
        case "tempi": try put("dynamics.initial_temperature_K", value(e), e)
        case "ig": try put("dynamics.seed", value(e), e)
        case "ntpr": try put("output.log_every", value(e), e)
        case "ntwx": try put("output.trajectory_every", value(e), e)
        case "ntwv", "ntwf":
            let key = e.key == "ntwv" ? "output.velocities_every" : "output.forces_every"
            let n = try integer(e)
            if n == -1 {
                guard ntwx > 0 else { throw error(e, "key '\(e.written)' = -1 stores \(e.key == "ntwv" ? "velocities" : "forces") in the trajectory at the ntwx stride, but ntwx is \(ntwx) (give ntwx a positive stride)") }
                try put(key, .integer(ntwx), e)
            } else if n < -1 {
                throw error(e, "key '\(e.written)' must be -1, 0 or a positive stride (got \(e.text))")
            } else {
                try put(key, .integer(n), e)
            }
        case "ntwr":
            let n = try integer(e)
            if n < 0 { throw error(e, "key '\(e.written)' < 0 (numbered restart files) is not supported; use a positive stride (got \(e.text))") }
            try put("output.restart_every", .integer(n), e)
        case "cut": try put("potential.cutoff_A", value(e), e)
        case "maxcyc": try put("minimize.max_steps", value(e), e)
        default:
            if let required = MdinReader.requiredValues[e.key] {
                let n = try integer(e)
                if n != required.value { throw error(e, "key '\(e.written)' = \(e.text): \(required.reason)") }
                ignored(e, "has no meaning here")
            } else if MdinReader.ignoredKeys.contains(e.key) {
                ignored(e, MdinReader.ignoredBecause[e.key] ?? "has no meaning here")
            } else {
                var message = "unknown key '\(e.written)' in &cntrl"
                let candidates = MdinReader.cntrlKeys + MdinReader.ignoredKeys.sorted()
                if let near = nearest(e.key, in: candidates) { message += "; did you mean '\(near)'?" }
                throw error(e, message)
            }
        }
    }

    /// AMBER inputs carry `cut` out of habit; for potentials whose range is
    /// not a deck setting (an ENINet model's own cutoff, harmonic terms, an external program) it is
    /// dropped with a warning rather than rejected.
    private func dropCutForPotentialsWithoutCutoff(_ root: TOMLTable) {
        guard let p = root["potential"], case .table(let potential) = p.value,
              let typeNode = potential["type"], case .string(let type) = typeNode.value,
              ["eninet", "harmonic", "external", "ipi"].contains(type),
              let cut = potential["cutoff_A"], let origin = cut.origin, origin.key.lowercased() == "cut" else { return }
        potential.remove("cutoff_A")
        let why = ["eninet": "an ENINet model sets its own cutoff",
                   "external": "an external program sets its own range",
                   "ipi": "an i-PI client sets its own range"][type] ?? "harmonic terms have no cutoff"
        warnings.append(DeckError(file: file, line: origin.line, message: "warning: '\(origin.key)' ignored (\(why))").description)
    }

    private func ignored(_ e: NamelistEntry, _ why: String) {
        warnings.append(DeckError(file: file, line: e.line, message: "warning: '\(e.written)' ignored (\(why))").description)
    }

    /// Stores a value at a canonical key; a key given twice (e.g. `cut` and
    /// `cutoff_A`) is an error naming both.
    private func insert(_ key: String, _ node: TOMLNode, into root: TOMLTable, entry: NamelistEntry) throws {
        let parts = key.split(separator: ".").map(String.init)
        var table = root
        for part in parts.dropLast() {
            if let existing = table[part], case .table(let t) = existing.value {
                table = t
            } else {
                let t = TOMLTable(line: entry.line, path: table.path + [part], kind: .header)
                table.set(part, TOMLNode(value: .table(t), line: entry.line))
                table = t
            }
        }
        guard let last = parts.last else { return }
        if let existing = table[last], let origin = existing.origin, origin.text.hasSuffix("(AMBER default)") == false {
            throw error(entry, "key '\(entry.written)' sets \(key), which '\(origin.key)' on line \(origin.line ?? 0) already sets")
        }
        table.set(last, node)
    }

    private func setPath(_ key: String, _ node: TOMLNode, in root: TOMLTable) {
        let parts = key.split(separator: ".").map(String.init)
        var table = root
        for part in parts.dropLast() {
            if let existing = table[part], case .table(let t) = existing.value {
                table = t
            } else {
                let t = TOMLTable(line: node.line, path: table.path + [part], kind: .header)
                table.set(part, TOMLNode(value: .table(t), line: node.line))
                table = t
            }
        }
        if let last = parts.last, table[last] == nil { table.set(last, node) }
    }

    // MARK: - Value conversion

    private func value(_ e: NamelistEntry) -> TOMLValue {
        let converted = e.values.map { v -> TOMLNode in
            let value: TOMLValue
            switch v {
            case .integer(let i): value = .integer(i)
            case .real(let d): value = .float(d)
            case .string(let s): value = .string(s)
            case .logical(let b): value = .boolean(b)
            }
            return TOMLNode(value: value, line: e.line)
        }
        if converted.count == 1, let only = converted.first { return only.value }
        return .array(converted)
    }

    private func number(_ e: NamelistEntry) -> Double? {
        guard e.values.count == 1, let v = e.values.first else { return nil }
        switch v {
        case .integer(let i): return Double(i)
        case .real(let d): return d.isFinite ? d : nil
        default: return nil
        }
    }

    private func integer(_ e: NamelistEntry) throws -> Int64 {
        guard e.values.count == 1, case .integer(let i) = e.values[0] else {
            throw error(e, "key '\(e.written)' must be an integer (got \(e.text))")
        }
        return i
    }

    private func error(_ e: NamelistEntry, _ message: String) -> DeckError {
        DeckError(file: file, line: e.line, message: message)
    }

    // MARK: - Namelist syntax

    private enum Token: Equatable {
        case groupStart(String)
        case groupEnd
        case identifier(String)
        case equals
        case comma
        case value(String)   // raw literal text: number, quoted string, logical
    }

    /// `key(i) = value`: Fortran namelists allow it; this reader takes whole keys only.
    private static func arrayElement(_ written: String, file: String, line: Int) -> DeckError {
        DeckError(file: file, line: line, message: "'\(written)' is not a key name (array elements such as nstlim(1) are not read; write the key alone)")
    }

    /// Splits the file into title and namelist entries (in file order).
    private func parseNamelists(_ text: String) throws -> (title: String, entries: [NamelistEntry], cntrlLine: Int) {
        // "\r\n" is one Character to Swift, which components(separatedBy: "\n") never cut: a
        // Windows mdin deck was one line, and "no &cntrl namelist group found".
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).map(String.init)
        if lines.last == "" { lines.removeLast() }
        var title = ""
        var firstContentLine = 0
        if let first = lines.first, !first.trimmingCharacters(in: .whitespaces).hasPrefix("&") {
            title = first.trimmingCharacters(in: .whitespaces)
            firstContentLine = 1
        }
        var tokens: [(Token, Int)] = []
        var inGroup = false
        for index in firstContentLine..<max(firstContentLine, lines.count) {
            let lineNumber = index + 1
            let chars = Array(lines[index])
            var i = 0
            while i < chars.count {
                let c = chars[i]
                if c == " " || c == "\t" || (c == "," && !inGroup) { i += 1; continue }
                if c == "!" { break }
                if !inGroup {
                    guard c == "&" || c == "$" else {
                        throw DeckError(file: file, line: lineNumber, message: "unexpected text outside a namelist group: '\(String(chars[i...]).trimmingCharacters(in: .whitespaces))' (groups start with &cntrl and end with /)")
                    }
                    var j = i + 1
                    while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { j += 1 }
                    let name = String(chars[(i + 1)..<j]).lowercased()
                    guard !name.isEmpty, name != "end" else {
                        throw DeckError(file: file, line: lineNumber, message: "'&end' without an open namelist group")
                    }
                    tokens.append((.groupStart(name), lineNumber))
                    inGroup = true
                    i = j
                    continue
                }
                switch c {
                case "/":
                    tokens.append((.groupEnd, lineNumber)); inGroup = false; i += 1
                case "&", "$":
                    var j = i + 1
                    while j < chars.count, chars[j].isLetter { j += 1 }
                    guard String(chars[(i + 1)..<j]).lowercased() == "end" else {
                        throw DeckError(file: file, line: lineNumber, message: "namelist group not closed with '/' before '\(String(chars[i..<j]))'")
                    }
                    tokens.append((.groupEnd, lineNumber)); inGroup = false; i = j
                case "=":
                    tokens.append((.equals, lineNumber)); i += 1
                case ",":
                    tokens.append((.comma, lineNumber)); i += 1
                case "'", "\"":
                    var j = i + 1
                    var s = ""
                    var closed = false
                    while j < chars.count {
                        if chars[j] == c {
                            if j + 1 < chars.count, chars[j + 1] == c { s.append(c); j += 2; continue }
                            closed = true
                            break
                        }
                        s.append(chars[j]); j += 1
                    }
                    guard closed else { throw DeckError(file: file, line: lineNumber, message: "unterminated string (strings cannot span lines)") }
                    tokens.append((.value(String(c) + s), lineNumber))
                    i = j + 1
                default:
                    var j = i
                    while j < chars.count, !" \t,=/!&$'\"".contains(chars[j]) { j += 1 }
                    let word = String(chars[i..<j])
                    if let first = word.first, first.isLetter || first == "_", word.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                        tokens.append((.identifier(word), lineNumber))
                    } else {
                        tokens.append((.value(word), lineNumber))
                    }
                    i = j
                }
            }
        }
        if inGroup {
            let start = tokens.last(where: { if case .groupStart = $0.0 { return true } else { return false } })
            throw DeckError(file: file, line: start?.1 ?? lines.count, message: "namelist group is not closed with '/'")
        }

        // Assemble entries: identifier '=' value (',' value)* until the next identifier '=' or group end.
        var entries: [NamelistEntry] = []
        var group = ""
        var seenGroups: [String: Int] = [:]
        var cntrlLine: Int?
        var seenKeys: [String: Int] = [:]
        var k = 0
        while k < tokens.count {
            let (token, line) = tokens[k]
            switch token {
            case .groupStart(let name):
                if let first = seenGroups[name] {
                    throw DeckError(file: file, line: line, message: "namelist group &\(name) appears twice (first on line \(first))")
                }
                guard ["cntrl", "eninetmd", "wt", "ewald"].contains(name) else {
                    throw DeckError(file: file, line: line, message: "unknown namelist group &\(name) (expected &cntrl or &eninetmd)")
                }
                seenGroups[name] = line
                if name == "cntrl" { cntrlLine = line }
                group = name
                seenKeys = [:]
                k += 1
            case .groupEnd:
                k += 1
            case .identifier(let written):
                guard k + 1 < tokens.count, tokens[k + 1].0 == .equals else {
                    throw DeckError(file: file, line: line, message: "expected '=' after '\(written)' in &\(group)")
                }
                let key = written.lowercased()
                if let first = seenKeys[key] {
                    throw DeckError(file: file, line: line, message: "duplicate key '\(written)' in &\(group) (first on line \(first))")
                }
                seenKeys[key] = line
                k += 2
                var values: [NamelistValue] = []
                var texts: [String] = []
                while k < tokens.count {
                    let (t, tLine) = tokens[k]
                    if case .comma = t { k += 1; continue }
                    if case .groupEnd = t { break }
                    if case .identifier(let word) = t {
                        if k + 1 < tokens.count, tokens[k + 1].0 == .equals { break }
                        guard let b = logical(word) else {
                            throw DeckError(file: file, line: tLine, message: "key '\(written)': unquoted text '\(word)' (quote strings: '\(word)')")
                        }
                        values.append(.logical(b)); texts.append(word); k += 1
                        continue
                    }
                    guard case .value(let raw) = t else {
                        throw DeckError(file: file, line: tLine, message: "key '\(written)': unexpected '=' (missing comma?)")
                    }
                    // `nstlim(1) = 5` lexes as a value followed by '=': it is a key, not the
                    // previous key's next value, and the error should name it.
                    if raw.contains("("), k + 1 < tokens.count, tokens[k + 1].0 == .equals {
                        throw Self.arrayElement(raw, file: file, line: tLine)
                    }
                    values.append(try literal(raw, key: written, line: tLine))
                    texts.append(raw.hasPrefix("'") || raw.hasPrefix("\"") ? raw + String(raw.first ?? "'") : raw)
                    k += 1
                }
                guard !values.isEmpty else {
                    throw DeckError(file: file, line: line, message: "key '\(written)' has no value")
                }
                entries.append(NamelistEntry(group: group, key: key, written: written, values: values,
                                             text: texts.joined(separator: ", "), line: line))
            case .value(let raw) where raw.contains("(") && k + 1 < tokens.count && tokens[k + 1].0 == .equals:
                throw Self.arrayElement(raw, file: file, line: line)
            case .equals, .comma, .value:
                throw DeckError(file: file, line: line, message: "expected a key in &\(group)")
            }
        }
        guard let cntrlLine else {
            throw DeckError(file: file, line: nil, message: "no &cntrl namelist group found (an mdin deck needs '&cntrl ... /')")
        }
        return (title, entries, cntrlLine)
    }

    private func logical(_ word: String) -> Bool? {
        switch word.lowercased() {
        case "t", "true", ".true.", ".t.": return true
        case "f", "false", ".false.", ".f.": return false
        default: return nil
        }
    }

    private func literal(_ raw: String, key: String, line: Int) throws -> NamelistValue {
        if let q = raw.first, q == "'" || q == "\"" { return .string(String(raw.dropFirst())) }
        if let b = logical(raw) { return .logical(b) }
        if raw.contains("*") {
            throw DeckError(file: file, line: line, message: "key '\(key)': repeat counts ('\(raw)') are not supported")
        }
        if let i = Int64(raw.hasPrefix("+") ? String(raw.dropFirst()) : raw) { return .integer(i) }
        // Fortran allows 1.0d-3 for double precision exponents.
        let normalised = raw.replacingOccurrences(of: "d", with: "e").replacingOccurrences(of: "D", with: "e")
        if normalised.allSatisfy({ "0123456789.eE+-".contains($0) }), let d = Double(normalised), d.isFinite {
            return .real(d)
        }
        throw DeckError(file: file, line: line, message: "key '\(key)': invalid value '\(raw)'")
    }
}
