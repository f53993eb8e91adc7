import ArgumentParser
import Foundation
import Geometry
import Potentials
import Dynamics
import Trajectory
import Deck

/// Options shared by commands that read a deck.
struct DeckOptions: ParsableArguments {
    @Argument(help: "Input deck: TOML (see Docs/deck.md) or an AMBER-style mdin file with &cntrl.")
    var deck: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a deck key, e.g. --set dynamics.seed=7 (repeatable).", valueName: "key=value"))
    var assignments: [String] = []

    func load(extra: [DeckOverride] = []) throws -> DeckSettings {
        var overrides = extra
        for a in assignments { overrides.append(try DeckOverride(assignment: a, source: "--set \(a)")) }
        let settings = try DeckLoader.load(path: deck, overrides: overrides)
        for warning in settings.warnings { printError(warning) }
        return settings
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

extension InputError {
    /// A stop that abandoned the starting forces (an external program's or an i-PI client's):
    /// nothing is written.
    static var stoppedInStartingForces: InputError {
        InputError("stopped by \(StopSignal.cause) while computing the starting forces; nothing was written")
    }
}

/// A run ended early on request; the files needed to continue it are written.
struct RunStopped: Error, CustomStringConvertible {
    let signal: String, step: Int, restartPath: String?
    var description: String {
        "stopped by \(signal) after step \(step)" + (restartPath.map { "; continue with --restart \($0)" } ?? "; no restart file was configured (output.restart)")
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run molecular dynamics from an input deck.",
        discussion: """
        Writes the thermodynamic log, an AMBER NetCDF trajectory and restart files as the deck's
        [output] table asks. SIGINT or SIGTERM stop the run at the end of the current step,
        write the last frame and a restart, and exit non-zero; an external program or i-PI
        client still computing a step's forces is not waited for, and the run ends after the
        step before. With
        --restart the run continues bit for bit from a restart file up to the deck's total
        number of steps.
        """)

    @OptionGroup var deckOptions: DeckOptions
    @OptionGroup var threadOptions: ThreadOptions

    @Option(help: "Continue from this restart file (written by eninet-md) instead of the deck's structure.")
    var restart: String?

    @Option(parsing: .unconditional, help: "Total number of steps (overrides dynamics.steps).")
    var steps: Int?

    @Flag(help: "Print no thermodynamic lines on standard output.")
    var quiet = false

    func run() throws {
        threadOptions.apply()
        var extra: [DeckOverride] = []
        if let steps { extra.append(DeckOverride(key: "dynamics.steps", value: String(steps), source: "--steps")) }
        let settings = try deckOptions.load(extra: extra)
        guard settings.task == .dynamics else {
            throw InputError("\(settings.deckPath): this deck asks for a minimisation; use `eninet-md minimize`")
        }
        if let restart {
            let outputs = [("output.log", settings.output.logPath), ("output.trajectory", settings.output.trajectoryPath),
                           ("output.final_structure", settings.output.finalStructurePath)]
            // output.restart may name the file it continues from: it is read before it is replaced.
            if let clash = outputs.first(where: { $0.1.map(canonicalPath) == canonicalPath(restart) }) {
                throw InputError("\(clash.0) = \(restart) would overwrite the restart this run continues from")
            }
        }
        // The tethers' anchors stay where they are while the barostat scales the atoms, but
        // their virial counts them as moving with the cell (LAMMPS fix spring/self): the log's
        // pressure then misses the target (4166 against 5000 bar for tethered argon).
        if settings.dynamics.barostat != nil, settings.potential.restrainsAtoms {
            throw InputError("\(settings.deckPath): dynamics.barostat cannot be combined with harmonic restraints (their anchors do not move with the cell); restrain with bonds, or run at constant volume")
        }
        try settings.output.createParentDirectories()
        try settings.output.checkWritable()

        let structure = try RunSetup.structure(settings)
        if let barostat = settings.dynamics.barostat {
            guard let cell = structure.cell, cell.pbc == .all else {
                throw InputError("\(settings.system.structurePath): dynamics.barostat needs a cell periodic along a, b and c; this structure is periodic along \"\(structure.cell?.pbc ?? .none)\" (x y z)")
            }
            if barostat.anisotropic, restart == nil, !MonteCarloBarostat.isInStandardOrientation(cell) {
                throw InputError("\(settings.system.structurePath): dynamics.barostat_coupling = \"anisotropic\" needs the cell in the standard orientation, a along x and b in the xy plane (as OpenMM and AMBER); this cell's a = \(cell.a), b = \(cell.b)")
            }
        }
        // Installed before the first forces: an external program runs in a process group of its
        // own, which a terminal's Ctrl-C does not reach, so eninet-md must stay alive to stop it.
        StopSignal.install()
        let potential = try RunSetup.potential(settings.potential, stopRequested: { StopSignal.requested })
        let restrained = RunSetup.restrainedDegreesOfFreedom(settings.potential, atomCount: structure.count)
        let integrator = try RunSetup.integrator(settings.dynamics, degreesOfFreedom: restrained)
        let degreesOfFreedom = restrained ?? integrator.degreesOfFreedom(atomCount: structure.count)
        // The first forces: what the potential refuses there (a cell too small, coinciding
        // atoms, an element the model does not know) belongs to the structure or the restart.
        func firstForces(_ make: () throws -> Simulation) throws -> Simulation {
            do {
                return try make()
            } catch is EvaluationStopped {
                throw InputError.stoppedInStartingForces
            } catch {
                throw InputError.blaming(restart ?? settings.system.structurePath, for: error)
            }
        }
        let simulation: Simulation
        if let restart {
            let saved = try AmberRestart.read(path: restart, expectedAtomCount: structure.count)
            let checkpoint = try RunSetup.restoredCheckpoint(saved, structure: structure, path: restart)
            simulation = try firstForces { try Simulation(restoring: checkpoint, integrator: integrator, potential: potential) }
        } else {
            let start = try RunSetup.initialState(structure, settings.dynamics, degreesOfFreedom: degreesOfFreedom)
            simulation = try firstForces { try Simulation(state: start, integrator: integrator, potential: potential) }
        }
        simulation.degreesOfFreedom = degreesOfFreedom
        let startStep = simulation.state.step
        // Continuing would cut the outputs back to the restart's step and add nothing.
        if let restart, startStep > settings.dynamics.steps {
            throw InputError("\(restart) is at step \(startStep), past the run's total of \(settings.dynamics.steps) steps (dynamics.steps, or --steps): nothing was changed")
        }
        let output = settings.output

        if !quiet {
            for line in settings.summaryLines { print("# " + line) }
            if settings.dynamics.seedFromClock { print("# seed drawn from the clock: \(settings.dynamics.seed)") }
            if let restart { print("# continuing from \(restart) at step \(startStep)") }
        } else if settings.dynamics.seedFromClock && restart == nil {
            // The only record of it: without it the run cannot be repeated.
            printError("# seed drawn from the clock: \(settings.dynamics.seed)")
        }

        var dipoles: DipoleEvaluator? = nil
        if output.dipoleEvery > 0, let path = output.dipoleModelPath {
            let evaluator = try DipoleEvaluator(path: path)
            // Fail now, not at the first frame, when the structure has an element the model lacks.
            _ = try evaluator.dipole(of: simulation.state)
            dipoles = evaluator
        }

        // Every output a continuation changes is checked before the first is changed.
        let logContinued = restart != nil && output.logEvery > 0 && output.logPath.map { FileManager.default.fileExists(atPath: $0) } == true
        // A log continued from a run with a barostat keeps its volume columns, also at constant volume.
        var logVolume = settings.dynamics.barostat != nil
        var logRows: String? = nil
        if logContinued, let path = output.logPath {
            (logRows, logVolume) = try LogFile.rowsKept(path: path, throughStep: startStep, volume: logVolume)
        }

        var trajectory: TrajectoryReporter? = nil
        if let path = output.trajectoryPath, output.trajectoryEvery > 0 {
            let writer: AmberTrajectoryWriter
            var lastKeptStep: Int? = nil
            if restart != nil, FileManager.default.fileExists(atPath: path) {
                let existing = try AmberTrajectoryReader(path: path)
                defer { try? existing.close() }
                if dipoles != nil, !existing.hasDipole {
                    throw InputError("\(path): this trajectory has no dipole variable, but the deck asks for dipoles (output.dipole_every); continue without them or start a new trajectory")
                }
                // The file's variables are fixed: velocities or forces asked for now were silently not written.
                for (asked, has, key) in [(output.velocitiesEvery > 0, existing.hasVelocities, "velocities_every"),
                                          (output.forcesEvery > 0, existing.hasForces, "forces_every")] where asked && !has {
                    throw InputError("\(path): this trajectory has no \(key.replacingOccurrences(of: "_every", with: "")) variable, but the deck asks for them (output.\(key)); continue without them or start a new trajectory")
                }
                let keep = try RunSetup.framesToKeep(of: existing, atomCount: structure.count,
                                                     periodic: structure.cell?.pbc.any ?? false, restartStep: startStep,
                                                     stride: output.trajectoryEvery, timestepFs: settings.dynamics.timestepFs)
                // Closed before the file is cut and appended to (the deferred close is then a no-op).
                try existing.close()
                writer = try AmberTrajectoryWriter(appendingTo: path, keepingFrames: keep.count)
                lastKeptStep = keep.lastStep
            } else {
                writer = try AmberTrajectoryWriter(
                    path: path, atomCount: structure.count, velocities: output.velocitiesEvery > 0, forces: output.forcesEvery > 0,
                    periodic: structure.cell?.pbc.any ?? false,
                    extras: [.potentialEnergy, .kineticEnergy, .temperature] + (dipoles != nil ? [.dipole] : []), title: settings.title)
            }
            let reporter = TrajectoryReporter(writer: writer, stride: output.trajectoryEvery, dipole: dipoles.map { $0.dipole(of:) },
                                              lastWrittenStep: lastKeptStep)
            trajectory = reporter
            simulation.addReporter(reporter)
        }
        var logFile: LogFile? = nil
        if let path = output.logPath, output.logEvery > 0 {
            if let logRows { try LogFile.replace(path: path, with: logRows) }
            let file = try LogFile(path: path, append: restart != nil)
            logFile = file
            let reporter = ThermoLogReporter(stride: output.logEvery, format: .csv, volume: logVolume, write: { try file.write($0) })
            reporter.writesHeader = !logContinued
            simulation.addReporter(reporter)
        }
        if !quiet && output.logEvery > 0 {
            simulation.addReporter(ThermoLogReporter(stride: output.logEvery, format: .columns, volume: logVolume, write: { print($0.hasSuffix("\n") ? String($0.dropLast()) : $0) }))
        }
        // The restart comes after the trajectory frame and the log row of its step: a run killed
        // between them leaves an older restart, whose continuation cuts the newer frame and row
        // and writes them again; the other way round, the row would be lost.
        var restartWriter: RestartReporter? = nil
        if let path = output.restartPath {
            let reporter = RestartReporter(path: path, stride: output.restartEvery, title: settings.title)
            restartWriter = reporter
            simulation.addReporter(reporter)
        }
        simulation.addReporter(ProgressReporter())

        simulation.stopRequested = { StopSignal.requested }

        let remaining = max(0, settings.dynamics.steps - startStep)
        let outcome: RunOutcome
        do {
            outcome = try simulation.run(steps: remaining)
        } catch let error as DynamicsError {
            // The simulation still holds the last good step: keep it for the user.
            try? trajectory?.write(simulation)
            try? trajectory?.close()
            throw InputError("\(error)" + (trajectory != nil ? "; the last good frame (step \(simulation.state.step)) is in the trajectory" : ""))
        }
        try trajectory?.write(simulation)
        try trajectory?.close()
        try restartWriter?.write(simulation)
        _ = logFile
        if !quiet, let barostat = simulation.integrator as? MonteCarloBarostat, barostat.attempts > 0 {
            let percent = 100 * Double(barostat.acceptances) / Double(barostat.attempts)
            print(String(format: "# barostat: %d of %d volume moves accepted (%.0f %%); moves now change the volume by up to %.3g %%",
                         barostat.acceptances, barostat.attempts, percent, 100 * (exp(barostat.maximumLogVolumeChange) - 1)))
        }
        if let path = output.finalStructurePath {
            let s = simulation.state
            var final = structure
            final.positions = s.positions
            final.velocities = s.velocities
            final.cell = s.cell
            final.forces = simulation.forces.forces
            final.info = ["energy": [simulation.forces.energy]]
            try StructureFile.write([final], to: path)
        }
        if case .stopped(let step) = outcome {
            throw RunStopped(signal: StopSignal.cause, step: step,
                             restartPath: output.restartPath)
        }
    }
}

struct Minimize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Minimise the energy of the deck's structure with FIRE.",
        discussion: "Stops when the largest force is below minimize.fmax_eV_per_A or after minimize.max_steps; writes output.final_structure.")

    @OptionGroup var deckOptions: DeckOptions
    @OptionGroup var threadOptions: ThreadOptions

    func run() throws {
        threadOptions.apply()
        // `minimize` always minimises (deck.md), so a deck written for it needs neither
        // `task = "minimize"` nor the `[dynamics]` table an MD deck requires.
        let settings = try deckOptions.load(extra: [DeckOverride(key: "task", value: "\"minimize\"", source: "eninet-md minimize")])
        try settings.output.createParentDirectories()
        try settings.output.checkWritable()
        let structure = try RunSetup.structure(settings)
        StopSignal.install()
        let potential = try RunSetup.potential(settings.potential, stopRequested: { StopSignal.requested })
        var state = try MDState(positions: structure.positions, velocities: nil, masses: try RunSetup.masses(structure),
                                cell: structure.cell, atomicNumbers: structure.atomicNumbers)
        let every = max(1, settings.output.logEvery)
        let result: FIRE.Result
        do {
            result = try FIRE().minimize(&state, potential: potential, forceTolerance: settings.minimize.fmaxEVPerA,
                                         maxSteps: settings.minimize.maxSteps, observer: { step, forces in
                if step % every == 0 {
                    let fmax = forces.forces.map(norm).max() ?? 0
                    print(String(format: "%8d  E = %.10f eV  fmax = %.3e eV/Å", step, forces.energy, fmax))
                }
            }, stopRequested: { StopSignal.requested })
        } catch is EvaluationStopped {
            throw InputError.stoppedInStartingForces
        } catch {
            throw InputError.blaming(settings.system.structurePath, for: error)
        }
        print(String(format: "%@ after %d steps: E = %.10f eV, fmax = %.3e eV/Å",
                     result.stopped ? "stopped" : (result.converged ? "converged" : "not converged"),
                     result.steps, result.energy, result.maxForce))
        if let path = settings.output.finalStructurePath {
            var final = structure
            final.positions = state.positions
            final.velocities = nil
            // Running.md promises forces with the energy; the file had the energy alone.
            final.forces = result.forces
            final.info = ["energy": [result.energy]]
            try StructureFile.write([final], to: path)
        }
        if result.stopped {
            throw InputError("stopped by \(StopSignal.cause) after step \(result.steps)"
                             + (settings.output.finalStructurePath.map { "; the structure so far is in \($0)" } ?? ""))
        }
        if !result.converged {
            throw InputError("minimisation did not reach fmax ≤ \(settings.minimize.fmaxEVPerA) eV/Å within \(settings.minimize.maxSteps) steps (fmax = \(result.maxForce) eV/Å)")
        }
    }
}
