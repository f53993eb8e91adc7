import XCTest
@testable import Deck

/// Validation rules that the corpus does not pin down on its own: inline
/// sum terms, format detection, output-path checks, defaults.
final class ValidationTests: XCTestCase {
    private let base = Fixtures.path("good")
    private let head = """
    [system]
    structure = "../argon108.extxyz"

    """

    private func load(_ text: String) throws -> DeckSettings {
        try DeckLoader.parse(text: text, file: "v.toml", baseDirectory: base, format: .toml)
    }

    private func assertError(_ text: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try load(text), file: file, line: line) { e in
            XCTAssertEqual("\(e)", expected, file: file, line: line)
        }
    }

    func testAnIPIClientsAddressIsAUnixNameOrAHostAndPort() throws {
        let dynamics = "\n[dynamics]\ntimestep_fs = 1\nsteps = 3\n"
        func potential(_ address: String) throws -> PotentialSettings {
            try load(head + "[potential]\ntype = \"ipi\"\naddress = \"\(address)\"\ntimeout_s = 30" + dynamics).potential
        }
        XCTAssertEqual(try potential("unix:qe-run"), .ipi(IPISettings(address: .unix(name: "qe-run"), timeoutS: 30)))
        XCTAssertEqual(try potential("localhost:31415"), .ipi(IPISettings(address: .tcp(host: "localhost", port: 31415), timeoutS: 30)))
        XCTAssertEqual(try potential("*:31415"), .ipi(IPISettings(address: .tcp(host: "*", port: 31415), timeoutS: 30)))
        XCTAssertEqual(try potential("10.0.0.7:8000"), .ipi(IPISettings(address: .tcp(host: "10.0.0.7", port: 8000), timeoutS: 30)))
        let rule = "must be 'unix:NAME' (the socket /tmp/ipi_NAME) or 'HOST:PORT' (HOST localhost, a numeric IPv4 address or *)"
        for bad in ["unix:", "unix:a/b", "localhost", "localhost:0", "localhost:65536", "example.org:31415", "unix:" + String(repeating: "x", count: 99)] {
            assertError(head + "[potential]\ntype = \"ipi\"\naddress = \"\(bad)\"" + dynamics,
                        "v.toml:5: key 'potential.address' \(rule) (got \"\(bad)\")")
        }
        assertError(head + "[potential]\ntype = \"ipi\"\naddress = \"unix:a\"\ncommand = \"pw.x\"" + dynamics,
                    "v.toml:6: unknown key 'potential.command' for potential type \"ipi\" (valid: type, address, timeout_s)")
    }

    func testInlineSumTermsAndDefaults() throws {
        let s = try load(head + """
        [potential]
        type = "sum"
        terms = [{ type = "lj", epsilon_eV = 1, sigma_A = 1, cutoff_A = 2.5 },
                 { type = "morse", D_eV = 1, alpha_per_A = 2, r0_A = 1.1, cutoff_A = 3, truncation = "switch", switch_start_A = 2.5 }]
        [dynamics]
        timestep_fs = 1
        steps = 3
        seed = 0
        """)
        XCTAssertEqual(s.potential, .sum([
            .lennardJones(LennardJonesSettings(epsilonEV: 1, sigmaA: 1, cutoffA: 2.5, truncation: .shift, skinA: 1)),
            .morse(MorseSettings(depthEV: 1, alphaPerA: 2, r0A: 1.1, cutoffA: 3, truncation: .switched(startA: 2.5), skinA: 1)),
        ]))
        XCTAssertEqual(s.dynamics, DynamicsSettings(integrator: .verlet, timestepFs: 1, steps: 3, seed: 0, seedFromClock: false))
        XCTAssertEqual(s.output, OutputSettings())
        XCTAssertEqual(s.title, "")
    }

    func testErrorsInsideSumTermsNameTheTerm() {
        assertError(head + """
        [potential]
        type = "sum"
        [[potential.terms]]
        type = "lj"
        epsilon_eV = 1
        sigma_A = 0
        cutoff_A = 2.5
        """, "v.toml:8: key 'potential.terms[0].sigma_A' must be positive (got 0)")
    }

    func testMissingKeyCitesItsTableHeader() {
        assertError(head + """

        [potential]
        type = "morse"
        D_eV = 1
        r0_A = 1
        cutoff_A = 3
        """, "v.toml:4: [potential] is missing required key 'alpha_per_A'")
    }

    func testOutputParentThatIsAFileIsRejected() {
        assertError(head + """
        [potential]
        type = "lj"
        epsilon_eV = 1
        sigma_A = 1
        cutoff_A = 2.5
        [dynamics]
        timestep_fs = 1
        steps = 1
        [output]
        trajectory = "argon-nve.toml/t.nc"
        """, "v.toml:12: key 'output.trajectory': cannot create \(base)/argon-nve.toml/t.nc: \(base)/argon-nve.toml is a file, not a directory")
    }

    func testTwoOutputsWithOneNameAreRejected() {
        assertError(head + """
        [potential]
        type = "lj"
        epsilon_eV = 1
        sigma_A = 1
        cutoff_A = 2.5
        [dynamics]
        timestep_fs = 1
        steps = 1
        [output]
        log = "out/a"
        restart = "out/../out/a"
        """, "v.toml:13: key 'output.restart' names the same file as 'output.log': \(base)/out/a")
    }

    func testCaseSlipsGetASuggestion() {
        assertError(head + """
        [potential]
        type = "lj"
        epsilon_eV = 1
        Sigma_A = 1
        """, "v.toml:6: unknown key 'potential.Sigma_A' for potential type \"lj\"; did you mean 'sigma_A'?")
    }

    func testFormatDetection() {
        XCTAssertEqual(DeckLoader.detectFormat(path: "a.toml", text: "&cntrl /"), .toml)
        XCTAssertEqual(DeckLoader.detectFormat(path: "a.in", text: ""), .mdin)
        XCTAssertEqual(DeckLoader.detectFormat(path: "a.MDIN", text: ""), .mdin)
        XCTAssertEqual(DeckLoader.detectFormat(path: "deck", text: "title\n  &CNTRL nstlim=1 /\n"), .mdin)
        XCTAssertEqual(DeckLoader.detectFormat(path: "deck", text: "title = 'x'\n"), .toml)
    }

    func testTaskMinimizeNeedsNoDynamics() throws {
        let s = try load("task = \"minimize\"\n" + head + """
        [potential]
        type = "harmonic"
        restraints = [[0, 2, 0, 0, 0]]
        """)
        XCTAssertEqual(s.task, .minimize)
        XCTAssertEqual(s.dynamics, DynamicsSettings())
        XCTAssertEqual(s.potential.maxAtomIndex, 0)
    }
}

/// `[dynamics] barostat`: its keys, their defaults, and the combinations that mean nothing.
final class BarostatDeckTests: XCTestCase {
    private let base = Fixtures.path("good")
    private let head = """
    [system]
    structure = "../argon108.extxyz"
    [potential]
    type = "lj"
    epsilon_eV = 0.0104
    sigma_A = 3.4
    cutoff_A = 8.5
    [dynamics]
    timestep_fs = 2
    steps = 10

    """

    private func load(_ text: String) throws -> DeckSettings {
        try DeckLoader.parse(text: head + text, file: "b.toml", baseDirectory: base, format: .toml)
    }

    private func assertError(_ text: String, _ expected: String, line: UInt = #line) {
        XCTAssertThrowsError(try load(text), line: line) { XCTAssertEqual("\($0)", expected, line: line) }
    }

    func testAMonteCarloBarostatIsReadWithItsDefaults() throws {
        let langevin = "integrator = \"langevin\"\ntemperature_K = 90\nfriction_per_ps = 2\n"
        let s = try load(langevin + "barostat = \"montecarlo\"\npressure_bar = -50.5\n")
        XCTAssertEqual(s.dynamics.barostat, BarostatSettings(pressureBar: -50.5, every: 25))
        XCTAssertTrue(s.summaryLines.contains { $0.contains("Monte Carlo barostat at -50.5 bar every 25 steps") }, "\(s.summaryLines)")
        let every = try load("integrator = \"bussi\"\ntemperature_K = 90\ntau_fs = 100\nbarostat = \"montecarlo\"\npressure_bar = 1\nbarostat_every = 7\n")
        XCTAssertEqual(every.dynamics.barostat, BarostatSettings(pressureBar: 1, every: 7))
        let anisotropic = try load(langevin + "barostat = \"montecarlo\"\npressure_bar = 1\nbarostat_coupling = \"anisotropic\"\n")
        XCTAssertEqual(anisotropic.dynamics.barostat, BarostatSettings(pressureBar: 1, anisotropic: true))
        XCTAssertTrue(anisotropic.summaryLines.contains { $0.contains("anisotropic Monte Carlo barostat at 1.0 bar") }, "\(anisotropic.summaryLines)")
        XCTAssertNil(try load(langevin).dynamics.barostat)
        XCTAssertNil(try load(langevin + "barostat = \"none\"\n").dynamics.barostat)
    }

    func testBarostatMistakesNameTheirKey() {
        let langevin = "integrator = \"langevin\"\ntemperature_K = 90\nfriction_per_ps = 2\n"
        assertError("barostat = \"montecarlo\"\npressure_bar = 1\n",
                    "b.toml:11: key 'dynamics.barostat' = \"montecarlo\" needs a thermostat: integrator = \"langevin\" or \"bussi\" (its temperature_K is the barostat's)")
        assertError(langevin + "barostat = \"montecarlo\"\n",
                    "b.toml:8: [dynamics] is missing required key 'pressure_bar' (barostat = \"montecarlo\" needs a target)")
        assertError(langevin + "pressure_bar = 1\n", "b.toml:14: key 'dynamics.pressure_bar' has no effect without barostat = \"montecarlo\"")
        assertError(langevin + "barostat = \"none\"\nbarostat_every = 5\n", "b.toml:15: key 'dynamics.barostat_every' has no effect without barostat = \"montecarlo\"")
        assertError(langevin + "barostat_coupling = \"anisotropic\"\n", "b.toml:14: key 'dynamics.barostat_coupling' has no effect without barostat = \"montecarlo\"")
        assertError(langevin + "barostat = \"montecarlo\"\npressure_bar = 1\nbarostat_coupling = \"semi\"\n",
                    "b.toml:16: key 'dynamics.barostat_coupling' must be one of \"isotropic\", \"anisotropic\" (got \"semi\")")
        assertError(langevin + "barostat = \"montecarlo\"\npressure_bar = 1\nbarostat_every = 0\n",
                    "b.toml:16: key 'dynamics.barostat_every' must be a positive number of steps (got 0)")
        assertError(langevin + "barostat = \"berendsen\"\npressure_bar = 1\n",
                    "b.toml:14: key 'dynamics.barostat' must be one of \"none\", \"montecarlo\" (got \"berendsen\")")
        assertError(langevin + "barostat = \"montecarlo\"\npressure_bar = \"1 atm\"\n",
                    "b.toml:15: key 'dynamics.pressure_bar' must be a number (got \"1 atm\")")
    }
}
