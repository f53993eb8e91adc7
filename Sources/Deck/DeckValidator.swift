import Foundation

/// A table of the deck being validated: hands out its fields by key and
/// rejects keys nobody asked for.
struct TableReader {
    let table: TOMLTable
    /// Canonical dotted name, e.g. `dynamics` or `potential.terms[1]` ("" for the root).
    let name: String
    let context: DeckContext

    func qualified(_ key: String) -> String { name.isEmpty ? key : name + "." + key }

    func field(_ key: String) -> DeckField? {
        table[key].map { DeckField(node: $0, key: qualified(key), context: context) }
    }

    func required(_ key: String, because reason: String? = nil) throws -> DeckField {
        if let f = field(key) { return f }
        let full = qualified(key)
        var message = name.isEmpty ? "missing required key '\(full)'" : "[\(name)] is missing required key '\(key)'"
        if let reason { message += " (\(reason))" }
        if let hint = context.missingHints[full] { message = "missing \(full): \(hint)" }
        if context.synthesized { throw DeckError(file: context.file, line: nil, message: message) }
        throw DeckError(file: context.file, line: name.isEmpty || table.line == 0 ? nil : table.line, message: message)
    }

    /// Rejects every key not in `allowed`, naming the nearest valid key.
    func checkKeys(_ allowed: [String], note: String? = nil) throws {
        for key in table.keys where !allowed.contains(key) {
            guard let node = table[key] else { continue }
            let f = DeckField(node: node, key: qualified(key), context: context)
            var isTable = false
            if case .table = node.value { isTable = true }
            if node.isArrayOfTables { isTable = true }
            var message = isTable && node.origin == nil
                ? "unknown table [\(qualified(key))]"
                : "unknown key \(f.displayName)"
            if let note { message += " " + note }
            if let near = nearest(key, in: allowed) {
                message += isTable && node.origin == nil ? "; did you mean [\(qualified(near))]?" : "; did you mean '\(near)'?"
            } else if !allowed.isEmpty {
                message += " (valid: \(allowed.joined(separator: ", ")))"
            }
            throw f.error(message)
        }
    }

    func subtable(_ key: String) throws -> TableReader? {
        guard let f = field(key) else { return nil }
        guard case .table(let t) = f.node.value else {
            throw f.invalid("must be a table ([\(f.key)])")
        }
        return TableReader(table: t, name: f.key, context: context)
    }
}

/// Turns a parsed deck tree (from TOML, or synthesised from an AMBER mdin)
/// into ``DeckSettings``, checking every value.
struct DeckValidator {
    let context: DeckContext
    var warnings: [String] = []

    static let potentialTypes = ["lj", "morse", "harmonic", "eninet", "external", "ipi", "sum"]
    static let integrators = ["verlet", "langevin", "bussi"]
    static let barostats = ["none", "montecarlo"]

    mutating func validate(_ root: TOMLTable, format: DeckFormat, deckPath: String) throws -> DeckSettings {
        let top = TableReader(table: root, name: "", context: context)
        try top.checkKeys(["title", "task", "system", "potential", "dynamics", "minimize", "output"])

        let title = try top.field("title")?.string() ?? ""
        let task = try DeckTask(rawValue: top.field("task")?.choice(["md", "minimize"]) ?? "md") ?? .dynamics

        guard let systemTable = try top.subtable("system") else {
            throw missingTable("system", hint: "structure")
        }
        let system = try readSystem(systemTable)

        guard let potentialTable = try top.subtable("potential") else {
            throw missingTable("potential", hint: "type")
        }
        let potential = try readPotential(potentialTable, allowSum: true)

        let dynamics: DynamicsSettings
        if let table = try top.subtable("dynamics") {
            dynamics = try readDynamics(table, required: task == .dynamics)
        } else if task == .dynamics {
            throw missingTable("dynamics", hint: nil)
        } else {
            dynamics = DynamicsSettings()
        }

        let minimize = try top.subtable("minimize").map(readMinimize) ?? MinimizeSettings()

        let outputTable = try top.subtable("output")
        let output = try outputTable.map { try readOutput($0, system: system, potential: potential, deckPath: deckPath) } ?? OutputSettings()

        return DeckSettings(deckPath: deckPath, format: format, title: title, task: task, system: system,
                            potential: potential, dynamics: dynamics, minimize: minimize, output: output,
                            warnings: warnings)
    }

    private func missingTable(_ name: String, hint: String?) -> DeckError {
        if let hint, let text = context.missingHints[name + "." + hint] {
            return DeckError(file: context.file, line: nil, message: "missing \(name).\(hint): \(text)")
        }
        return DeckError(file: context.file, line: nil, message: "missing required table [\(name)]")
    }

    // MARK: [system]

    private func readSystem(_ t: TableReader) throws -> SystemSettings {
        try t.checkKeys(["structure", "replicate"])
        let structure = try t.required("structure").existingFile()
        var replicate = SIMD3<Int>(1, 1, 1)
        if let f = t.field("replicate") {
            let items = try f.array()
            guard items.count == 3 else { throw f.invalid("must be an array of 3 positive integers [na, nb, nc]") }
            for (k, item) in items.enumerated() {
                let e = f.element(k, item)
                let n = try e.integer()
                // The element's own value: an mdin list's origin text is the whole list ("2, 0, 2").
                guard n >= 1 else { throw e.error("key \(e.displayName) must be at least 1 (got \(n))") }
                replicate[k] = n
            }
        }
        return SystemSettings(structurePath: structure, replicate: replicate)
    }

    // MARK: [potential]

    private func readPotential(_ t: TableReader, allowSum: Bool) throws -> PotentialSettings {
        let typeField = try t.required("type")
        let allowedTypes = allowSum ? Self.potentialTypes : Self.potentialTypes.filter { $0 != "sum" }
        let type: String
        do {
            type = try typeField.choice(allowedTypes)
        } catch let e as DeckError where !allowSum && (try? typeField.string()) == "sum" {
            throw DeckError(file: e.file, line: e.line, message: "key \(typeField.displayName): a sum term cannot itself be a sum")
        }
        let note = "for potential type \"\(type)\""
        switch type {
        case "lj":
            try t.checkKeys(["type", "epsilon_eV", "sigma_A", "cutoff_A", "truncation", "switch_start_A", "skin_A"], note: note)
            let epsilon = try t.required("epsilon_eV").positive()
            let sigma = try t.required("sigma_A").positive()
            let (cutoff, truncation, skin) = try readCutoff(t)
            return .lennardJones(LennardJonesSettings(epsilonEV: epsilon, sigmaA: sigma, cutoffA: cutoff, truncation: truncation, skinA: skin))
        case "morse":
            try t.checkKeys(["type", "D_eV", "alpha_per_A", "r0_A", "cutoff_A", "truncation", "switch_start_A", "skin_A"], note: note)
            let depth = try t.required("D_eV").positive()
            let alpha = try t.required("alpha_per_A").positive()
            let r0 = try t.required("r0_A").positive()
            let (cutoff, truncation, skin) = try readCutoff(t)
            return .morse(MorseSettings(depthEV: depth, alphaPerA: alpha, r0A: r0, cutoffA: cutoff, truncation: truncation, skinA: skin))
        case "harmonic":
            try t.checkKeys(["type", "bonds", "restraints"], note: note)
            let bonds = try t.field("bonds").map(readBonds) ?? []
            let restraints = try t.field("restraints").map(readRestraints) ?? []
            if bonds.isEmpty && restraints.isEmpty {
                throw typeField.error("harmonic potential [\(t.name)] needs at least one entry in 'bonds' or 'restraints'")
            }
            return .harmonic(HarmonicSettings(bonds: bonds, restraints: restraints))
        case "eninet":
            try t.checkKeys(["type", "model", "precision", "skin_A"], note: note)
            let model = try t.required("model").existingFile()
            let precision = try ENINetPrecision(rawValue: t.field("precision")?.choice(["float", "double"]) ?? "float") ?? .float
            let skin = try t.field("skin_A")?.nonNegative() ?? 1.0
            return .eninet(ENINetSettings(modelPath: model, precision: precision, skinA: skin))
        case "external":
            try t.checkKeys(["type", "command", "timeout_s"], note: note)
            let commandField = try t.required("command")
            let command = try commandField.string()
            guard !command.allSatisfy(\.isWhitespace) else { throw commandField.invalid("must name the program to run") }
            let timeout = try t.field("timeout_s")?.positive() ?? ExternalSettings.defaultTimeoutS
            return .external(ExternalSettings(command: command, workingDirectory: context.baseDirectory, timeoutS: timeout))
        case "ipi":
            try t.checkKeys(["type", "address", "timeout_s"], note: note)
            let addressField = try t.required("address")
            guard let address = IPISettings.address(parsing: try addressField.string()) else {
                throw addressField.invalid("must be 'unix:NAME' (the socket /tmp/ipi_NAME) or 'HOST:PORT' (HOST localhost, a numeric IPv4 address or *)")
            }
            let timeout = try t.field("timeout_s")?.positive() ?? ExternalSettings.defaultTimeoutS
            return .ipi(IPISettings(address: address, timeoutS: timeout))
        default:
            try t.checkKeys(["type", "terms"], note: note)
            let termsField = try t.required("terms")
            let items = try termsField.array()
            guard !items.isEmpty else { throw termsField.invalid("must list at least one potential") }
            var terms: [PotentialSettings] = []
            for (k, item) in items.enumerated() {
                let e = termsField.element(k, item)
                guard case .table(let sub) = item.value else {
                    throw e.invalid("must be a table with its own 'type' ([[\(termsField.key)]])")
                }
                terms.append(try readPotential(TableReader(table: sub, name: e.key, context: context), allowSum: false))
            }
            return .sum(terms)
        }
    }

    private func readCutoff(_ t: TableReader) throws -> (Double, Truncation, Double) {
        let cutoffField = try t.required("cutoff_A")
        let cutoff = try cutoffField.positive()
        let skin = try t.field("skin_A")?.nonNegative() ?? 1.0
        let mode = try t.field("truncation")?.choice(["shift", "switch", "none"]) ?? "shift"
        let start = t.field("switch_start_A")
        switch mode {
        case "switch":
            let startField = try t.required("switch_start_A", because: "truncation = \"switch\" needs it")
            let s = try startField.positive()
            guard s < cutoff else {
                throw startField.error("key \(startField.displayName) must be smaller than \(cutoffField.writtenName) = \(cutoffField.got) (got \(startField.got))")
            }
            return (cutoff, .switched(startA: s), skin)
        default:
            if let start {
                throw start.error("key \(start.displayName) is only used with truncation = \"switch\" (truncation is \"\(mode)\")")
            }
            return (cutoff, mode == "none" ? .none : .shift, skin)
        }
    }

    private func readBonds(_ f: DeckField) throws -> [HarmonicBond] {
        try f.array().enumerated().map { k, item in
            let e = f.element(k, item)
            let parts = try e.array()
            guard parts.count == 4 else { throw e.invalid("must be [i, j, k_eV_per_A2, r0_A]") }
            let i = try atomIndex(e.element(0, parts[0]))
            let j = try atomIndex(e.element(1, parts[1]))
            guard i != j else { throw e.invalid("bonds an atom to itself") }
            let kk = try e.element(2, parts[2]).positive()
            let r0 = try e.element(3, parts[3]).nonNegative()
            return HarmonicBond(i: i, j: j, kEVPerA2: kk, r0A: r0)
        }
    }

    private func readRestraints(_ f: DeckField) throws -> [HarmonicRestraint] {
        try f.array().enumerated().map { k, item in
            let e = f.element(k, item)
            let parts = try e.array()
            guard parts.count == 5 else { throw e.invalid("must be [i, k_eV_per_A2, x_A, y_A, z_A]") }
            let i = try atomIndex(e.element(0, parts[0]))
            let kk = try e.element(1, parts[1]).positive()
            let x = try e.element(2, parts[2]).number()
            let y = try e.element(3, parts[3]).number()
            let z = try e.element(4, parts[4]).number()
            return HarmonicRestraint(atom: i, kEVPerA2: kk, anchorA: SIMD3(x, y, z))
        }
    }

    private func atomIndex(_ f: DeckField) throws -> Int {
        let i = try f.integer()
        guard i >= 0 else { throw f.invalid("must be a 0-based atom index (>= 0)") }
        return i
    }

    // MARK: [dynamics]

    private mutating func readDynamics(_ t: TableReader, required: Bool) throws -> DynamicsSettings {
        try t.checkKeys(["integrator", "timestep_fs", "steps", "temperature_K", "friction_per_ps", "tau_fs",
                         "initial_temperature_K", "seed", "remove_com_motion", "barostat", "pressure_bar", "barostat_every",
                         "barostat_coupling"])
        let integratorName = try t.field("integrator")?.choice(Self.integrators) ?? "verlet"
        let timestep = try (required ? t.required("timestep_fs") : t.field("timestep_fs"))?.positive() ?? 1.0
        let steps = try (required ? t.required("steps") : t.field("steps"))?.nonNegativeInteger() ?? 0

        let temperatureField = t.field("temperature_K")
        let frictionField = t.field("friction_per_ps")
        let tauField = t.field("tau_fs")
        let integrator: IntegratorSettings
        var temperature: Double?
        switch integratorName {
        case "langevin":
            temperature = try t.required("temperature_K", because: "integrator = \"langevin\" needs a target").nonNegative()
            integrator = .langevin(frictionPerPs: try t.required("friction_per_ps", because: "integrator = \"langevin\" needs it").positive())
            if let tauField { throw unused(tauField, integratorName) }
        case "bussi":
            temperature = try t.required("temperature_K", because: "integrator = \"bussi\" needs a target").nonNegative()
            integrator = .bussi(tauFs: try t.required("tau_fs", because: "integrator = \"bussi\" needs it").positive())
            if let frictionField { throw unused(frictionField, integratorName) }
        default:
            integrator = .verlet
            if let temperatureField {
                throw temperatureField.error("key \(temperatureField.displayName) has no effect with integrator = \"verlet\" (NVE); use initial_temperature_K for starting velocities")
            }
            if let frictionField { throw unused(frictionField, integratorName) }
            if let tauField { throw unused(tauField, integratorName) }
        }
        if let f = temperatureField, let tval = temperature, tval == 0, integratorName != "verlet" {
            warnings.append(f.warning("warning: thermostat target temperature is 0 K"))
        }

        let initialTemperature = try t.field("initial_temperature_K")?.nonNegative()
        var seed: UInt64 = 0
        var fromClock = true
        if let f = t.field("seed") {
            let s = try f.integer()
            if s == -1 {
                fromClock = true
            } else if s >= 0 {
                seed = UInt64(s)
                fromClock = false
            } else {
                throw f.invalid("must be a non-negative integer, or -1 for a seed from the clock")
            }
        }
        if fromClock { seed = clockSeed() }
        let removeCOM = try t.field("remove_com_motion")?.bool() ?? true
        return DynamicsSettings(integrator: integrator, timestepFs: timestep, steps: steps, temperatureK: temperature,
                                initialTemperatureK: initialTemperature, seed: seed, seedFromClock: fromClock,
                                removeCenterOfMassMotion: removeCOM, barostat: try readBarostat(t, integrator: integratorName))
    }

    private func readBarostat(_ t: TableReader, integrator: String) throws -> BarostatSettings? {
        let kind = try t.field("barostat")?.choice(Self.barostats) ?? "none"
        let pressureField = t.field("pressure_bar"), everyField = t.field("barostat_every")
        let couplingField = t.field("barostat_coupling")
        guard kind == "montecarlo" else {
            if let f = pressureField ?? everyField ?? couplingField {
                throw f.error("key \(f.displayName) has no effect without barostat = \"montecarlo\"")
            }
            return nil
        }
        if integrator == "verlet", let f = t.field("barostat") {
            throw f.error("key \(f.displayName) = \"montecarlo\" needs a thermostat: integrator = \"langevin\" or \"bussi\" (its temperature_K is the barostat's)")
        }
        let pressure = try t.required("pressure_bar", because: "barostat = \"montecarlo\" needs a target").number()
        var every = BarostatSettings.defaultEvery
        if let f = everyField {
            every = try f.integer()
            guard every >= 1 else { throw f.invalid("must be a positive number of steps") }
        }
        let coupling = try couplingField?.choice(["isotropic", "anisotropic"]) ?? "isotropic"
        return BarostatSettings(pressureBar: pressure, every: every, anisotropic: coupling == "anisotropic")
    }

    private func unused(_ f: DeckField, _ integrator: String) -> DeckError {
        f.error("key \(f.displayName) has no effect with integrator = \"\(integrator)\"")
    }

    // MARK: [minimize]

    private func readMinimize(_ t: TableReader) throws -> MinimizeSettings {
        try t.checkKeys(["max_steps", "fmax_eV_per_A"])
        let maxSteps = try t.field("max_steps")?.nonNegativeInteger() ?? 1000
        let fmax = try t.field("fmax_eV_per_A")?.positive() ?? 0.05
        return MinimizeSettings(maxSteps: maxSteps, fmaxEVPerA: fmax)
    }

    // MARK: [output]

    private mutating func readOutput(_ t: TableReader, system: SystemSettings, potential: PotentialSettings,
                                     deckPath: String) throws -> OutputSettings {
        try t.checkKeys(["log", "log_every", "trajectory", "trajectory_every", "velocities_every", "forces_every",
                         "restart", "restart_every", "final_structure", "dipole_every", "dipole_model"])
        var out = OutputSettings()
        var written: [(path: String, field: DeckField)] = []
        func output(_ key: String) throws -> String? {
            guard let f = t.field(key) else { return nil }
            let path = try f.outputPath()
            if path == system.structurePath {
                throw f.error("key \(f.displayName) would overwrite the input structure \(path)")
            }
            if let clash = written.first(where: { $0.path == path }) {
                throw f.error("key \(f.displayName) names the same file as \(clash.field.displayName): \(path)")
            }
            written.append((path, f))
            return path
        }
        out.logPath = try output("log")
        out.trajectoryPath = try output("trajectory")
        out.restartPath = try output("restart")
        // Both are written as AMBER NetCDF whatever their name: traj.xyz or traj.dcd would be a
        // NetCDF file that other programs misread by its extension. Only the extensions of other
        // formats are refused: AMBER names its files freely (md.crd, prod.inpcrd, traj.nc.1).
        let otherFormats: Set = ["xyz", "extxyz", "pdb", "gro", "dcd", "xtc", "trr", "lammpstrj", "dump", "h5", "h5md",
                                 "csv", "txt", "log", "json", "toml", "in", "safetensors"]
        for key in ["trajectory", "restart"] {
            guard let f = t.field(key), let path = key == "trajectory" ? out.trajectoryPath : out.restartPath else { continue }
            let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
            if otherFormats.contains(ext) {
                throw f.invalid("is written as AMBER NetCDF, not .\(ext); give it a NetCDF name such as \(key == "trajectory" ? ".nc" : ".ncrst")")
            }
        }
        out.finalStructurePath = try output("final_structure")

        out.logEvery = try t.field("log_every")?.nonNegativeInteger() ?? 100
        if let f = t.field("trajectory_every") {
            out.trajectoryEvery = try f.nonNegativeInteger()
            if out.trajectoryEvery > 0 && out.trajectoryPath == nil {
                throw needs(f, "a trajectory file", "output.trajectory")
            }
        } else {
            out.trajectoryEvery = out.trajectoryPath == nil ? 0 : 100
        }
        // Velocities, forces and dipoles are stored in the trajectory frames.
        let strideName = t.field("trajectory_every")?.writtenName ?? "trajectory_every"
        func frameStride(_ f: DeckField) throws -> Int {
            let n = try f.nonNegativeInteger()
            if n > 0 && (out.trajectoryPath == nil || n != out.trajectoryEvery) {
                throw f.error("key \(f.displayName) must be 0 or equal to \(strideName) = \(out.trajectoryEvery) (they are stored in the trajectory frames) (got \(f.got))")
            }
            return n
        }
        if let f = t.field("velocities_every") { out.velocitiesEvery = try frameStride(f) }
        if let f = t.field("forces_every") { out.forcesEvery = try frameStride(f) }
        if let f = t.field("restart_every") {
            out.restartEvery = try f.nonNegativeInteger()
            if out.restartEvery > 0 && out.restartPath == nil {
                throw needs(f, "a restart file", "output.restart")
            }
        }
        if let f = t.field("dipole_model") {
            out.dipoleModelPath = try f.existingFile()
        }
        if let f = t.field("dipole_every") {
            out.dipoleEvery = try f.nonNegativeInteger()
            if out.dipoleEvery > 0 && out.dipoleModelPath == nil {
                throw needs(f, "a dipole model", "output.dipole_model")
            }
            out.dipoleEvery = try frameStride(f)
        } else if let f = t.field("dipole_model") {
            warnings.append(f.warning("warning: key \(f.displayName) is set but dipole_every = 0, so no dipoles are computed"))
        }
        // An output over one of the run's inputs replaced the deck or a model with the log.
        func canonical(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path }
        let inputs = [(deckPath, "the deck"), (out.dipoleModelPath, "the dipole model")].compactMap { p, role in p.map { ($0, role) } }
            + potential.modelPaths.map { ($0, "the model") }
        for (path, field) in written {
            if let input = inputs.first(where: { canonical($0.0) == canonical(path) }) {
                throw field.error("key \(field.displayName) would overwrite \(input.1) \(path)")
            }
        }
        return out
    }
}

extension DeckValidator {
    /// A stride set without the file it writes to.
    fileprivate func needs(_ f: DeckField, _ what: String, _ key: String) -> DeckError {
        f.error("key \(f.displayName) = \(f.got) needs \(what) (\(context.missingHints[key] ?? key))")
    }
}

/// A seed that differs from run to run, for `seed = -1` (AMBER `ig = -1`).
func clockSeed() -> UInt64 {
    let microseconds = UInt64(max(0, Date().timeIntervalSince1970 * 1_000_000))
    return (microseconds ^ (UInt64(ProcessInfo.processInfo.processIdentifier) << 32)) & 0x7FFF_FFFF_FFFF_FFFF
}
