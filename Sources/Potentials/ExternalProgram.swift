import Foundation

/// A failure of an external program or of its answer; the message names the command.
public struct ExternalProgramError: Error, CustomStringConvertible {
    public let description: String
    init(_ command: String, _ what: String) { description = "external program '\(command)': \(what)" }
}

/// Runs a shell command once per call: text on its standard input, its standard output back.
///
/// Started with `posix_spawn` and reaped with `waitpid`, not with Foundation's `Process`, which
/// reports a program's end only once every process holding a descriptor it hands out has closed
/// it: a program that leaves a child running in the background blocked every call until the
/// child ended. The program leads a process group of its own, so that a timeout or a stop
/// request ends the children it started too; a terminal's Ctrl-C reaches `eninet-md` alone,
/// which then stops the group itself.
struct ExternalProgram {
    let command: String
    let workingDirectory: String
    /// Seconds one call may take.
    let timeout: Double
    /// Polled while the program runs; when it turns true the program's group is stopped and the
    /// call throws ``EvaluationStopped`` (a quantum-chemistry step can take an hour).
    let stopRequested: @Sendable () -> Bool
    /// Where the input, the output and the error text of a call lie: files rather than pipes,
    /// so that neither side blocks on a full pipe.
    let scratch: URL
    private let inputPath: String, outputPath: String, errorPath: String

    init(command: String, workingDirectory: String, timeout: Double, scratch: URL,
         stopRequested: @escaping @Sendable () -> Bool = { false }) {
        self.command = command
        self.workingDirectory = workingDirectory
        self.timeout = timeout
        self.stopRequested = stopRequested
        self.scratch = scratch
        inputPath = scratch.appendingPathComponent("frame.extxyz").path
        outputPath = scratch.appendingPathComponent("answer").path
        errorPath = scratch.appendingPathComponent("error").path
    }

    /// The program's standard output, after checking that it ended in time with status 0.
    func run(input: String) throws -> String {
        // A stop that came while another term of a sum was computing: no use starting the program.
        if stopRequested() { throw stopped() }
        do {
            try input.write(toFile: inputPath, atomically: false, encoding: .utf8)
        } catch {
            throw ExternalProgramError(command, "cannot write its input \(inputPath): \(error.localizedDescription)")
        }
        let pid = try spawn()
        let status = try wait(for: pid)
        let signal = status & 0x7f
        guard signal == 0, (status >> 8) & 0xff == 0 else {
            let how = signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
            throw ExternalProgramError(command, how + Self.tail(ofFile: errorPath))
        }
        guard let data = FileManager.default.contents(atPath: outputPath) else {
            throw ExternalProgramError(command, "its output \(outputPath) cannot be read")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `/bin/sh` running the command in the working directory, standard streams on the files.
    private func spawn() throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (descriptor, path, flags) in [(Int32(0), inputPath, O_RDONLY), (1, outputPath, O_WRONLY | O_CREAT | O_TRUNC),
                                          (2, errorPath, O_WRONLY | O_CREAT | O_TRUNC)] {
            let status = posix_spawn_file_actions_addopen(&actions, descriptor, path, flags, 0o600)
            guard status == 0 else {
                throw ExternalProgramError(command, "cannot prepare its standard streams: \(String(cString: strerror(status)))")
            }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Signals ignored or blocked in eninet-md stay so across exec, and eninet-md may have
        // inherited them (started by nohup, from a script with `&`, by a parent ignoring
        // SIGPIPE): the program gets the default dispositions and no blocked signals.
        var defaults = sigset_t(), none = sigset_t()
        sigemptyset(&defaults)
        sigemptyset(&none)
        for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE] { sigaddset(&defaults, s) }
        let flags = Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        for status in [posix_spawnattr_setsigdefault(&attributes, &defaults), posix_spawnattr_setsigmask(&attributes, &none),
                       posix_spawnattr_setpgroup(&attributes, 0), posix_spawnattr_setflags(&attributes, flags)] where status != 0 {
            throw ExternalProgramError(command, "cannot prepare its process attributes: \(String(cString: strerror(status)))")
        }
        // The directory and the command reach the shell as arguments, so neither is re-quoted.
        let arguments = ["/bin/sh", "-c", "cd -- \"$1\" && eval \"$2\"", "sh", workingDirectory, command]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        Self.markOpenDescriptorsCloseOnExec()
        var pid = pid_t()
        let status = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw ExternalProgramError(command, "cannot start /bin/sh: \(String(cString: strerror(status)))")
        }
        return pid
    }

    /// The run's open files (the trajectory libnetcdf opened, the log) were inherited by the
    /// program and by whatever it leaves running in the background, which kept them open after
    /// the run. libnetcdf takes no close-on-exec flag and Glibc's module has no
    /// `posix_spawn_file_actions_addclosefrom_np`, so every descriptor above the standard three
    /// is marked before the spawn (the program's own streams are opened by the spawn itself).
    static func markOpenDescriptorsCloseOnExec() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let descriptor = Int32(entry), descriptor > 2 else { continue }
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// How often a running program is checked for a stop request: a stop takes effect within
    /// this time (and the 2 s a program gets to end on SIGTERM).
    static let stopPollInterval = 0.05

    /// The wait status of `pid`. Past the timeout, or on a stop request, its process group is
    /// stopped (SIGTERM, then SIGKILL) and the call throws.
    private func wait(for pid: pid_t) throws -> Int32 {
        final class Status: @unchecked Sendable { var value: Int32 = 0 }
        let status = Status(), ended = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            var s: Int32 = 0
            while waitpid(pid, &s, 0) == -1 && errno == EINTR {}
            status.value = s
            ended.signal()
        }
        let deadline = DispatchTime.now() + timeout
        while true {
            let slice = min(deadline, .now() + Self.stopPollInterval)
            if ended.wait(timeout: slice) == .success { return status.value }
            let stop = stopRequested()
            guard stop || DispatchTime.now() >= deadline else { continue }
            // An answer that came in the meantime is kept: it may have taken an hour.
            if ended.wait(timeout: .now()) == .success { return status.value }
            stopGroup(pid, ended)
            throw stop ? stopped() : ExternalProgramError(command, "no answer within \(timeout) s (stopped)")
        }
    }

    private func stopped() -> EvaluationStopped {
        EvaluationStopped("external program '\(command)' stopped on request, before it answered")
    }

    /// SIGTERM to the program's group, SIGKILL to what is left of it 2 s later. The group, not
    /// just the program: `/bin/sh` ends at once on SIGTERM, while what it started may catch it
    /// and go on.
    private func stopGroup(_ pid: pid_t, _ ended: DispatchSemaphore) {
        kill(-pid, SIGTERM)
        let deadline = DispatchTime.now() + 2
        var programEnded = false
        while DispatchTime.now() < deadline {
            if !programEnded { programEnded = ended.wait(timeout: .now() + 0.02) == .success } else { usleep(20_000) }
            if programEnded && !Self.groupIsRunning(pid) { return }
        }
        kill(-pid, SIGKILL)
        if !programEnded { _ = ended.wait(timeout: .now() + 10) }
    }

    /// Whether a process of group `group` has not ended. A member that ended after its shell
    /// did waits for PID 1 to reap it, and `kill(-group, 0)` counts it until then: in this
    /// container that took 1–1.7 s, most of a stop. So `/proc` decides, where it can be read.
    static func groupIsRunning(_ group: pid_t) -> Bool {
        guard kill(-group, 0) == 0 else { return false }
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return true }
        for entry in entries where entry.first?.isNumber == true {
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ", maxSplits: 4)
            guard fields.count >= 3, Int32(fields[2]) == group else { continue }
            if fields[0] != "Z" && fields[0] != "X" { return true }
        }
        return false
    }

    /// The last lines of the program's error text (at most 4 KB of it), for the message.
    static func tail(ofFile path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 4096 ? size - 4096 : 0)
        let text = String(decoding: (try? handle.readToEnd()) ?? Data(), as: UTF8.self)
        let lines = text.split(whereSeparator: \.isNewline).suffix(5).map { $0.count > 300 ? $0.prefix(300) + "…" : $0 }
        return lines.isEmpty ? "" : "; its standard error ends:\n" + lines.joined(separator: "\n")
    }
}
