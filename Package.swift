// swift-tools-version:5.10
import Foundation
import PackageDescription

// Module layout and dependency direction follow ../shared/docs/design.md:
// a module imports only what its row in the design table names.
// The numeric loops run about 10% faster with AVX2 and FMA (bench eninet). They are enabled only
// when the machine that builds has them, because the binary is run where it is built; set
// ENINETMD_PORTABLE=1 to build for any x86-64. AVX-512 machines get haswell too: on a Zen 4,
// `-target-cpu znver4` was no faster, and slower for small/aspirin (Docs/model-files.md).
let cpuFlags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
    .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
let buildsForThisCPU = ProcessInfo.processInfo.environment["ENINETMD_PORTABLE"] == nil
    && cpuFlags.isSuperset(of: ["avx2", "fma", "bmi2", "f16c"])
// FUSED_MULTIPLY_ADD makes `adding(_:times:)` one FMA instruction (6 % of an ENINet evaluation);
// without the flag, a fused multiply-add would be a library call per lane, so it stays two operations.
// Without -fno-math-errno, `Float.squareRoot()` (a C shim compiled by the Clang importer) is a
// scalar `sqrtss` with a branch to libm's `sqrtf` for negative inputs, only to set errno, which
// Swift never reads; loops of square roots then stay scalar. With it they become `vsqrtps`.
let mathSettings: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-fno-math-errno"])]
let optimise: [SwiftSetting] = mathSettings + (buildsForThisCPU
    ? [.unsafeFlags(["-target-cpu", "haswell"]), .define("FUSED_MULTIPLY_ADD")] : [])
// Most test targets' own code does little work (it is in the modules they test, which keep -O),
// and compiled with -O the last of them (CLITests) took a minute after every module was built:
// those take -Onone. GeometryTests, TensorsTests and AnalysisTests run brute-force references
// of their own (neighbour search, products, MSD; 45 s more at -Onone) and keep -O: they compile
// beside Tensors, before the modules the others wait for.
let testSettings: [SwiftSetting] = [.unsafeFlags(["-Onone"])]

let package = Package(
    name: "ENINetMD",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "eninet-md", targets: ["eninet-md"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CNetCDF", path: "Sources/CNetCDF", pkgConfig: "netcdf",
                       providers: [.apt(["libnetcdf-dev"])]),
        .systemLibrary(name: "CFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3",
                       providers: [.apt(["libfftw3-dev"])]),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),

        .target(name: "Geometry", swiftSettings: optimise),
        .target(name: "Tensors", dependencies: ["CBLAS"], swiftSettings: optimise),
        .target(name: "ENINet", dependencies: ["Tensors", "Geometry"], swiftSettings: optimise),
        .target(name: "Potentials", dependencies: ["Geometry", "ENINet"], swiftSettings: optimise),
        .target(name: "Dynamics", dependencies: ["Potentials", "Geometry"], swiftSettings: optimise),
        .target(name: "Trajectory", dependencies: ["CNetCDF", "Geometry"], swiftSettings: optimise),
        .target(name: "Analysis", dependencies: ["CFFTW", "Trajectory", "Geometry"], swiftSettings: optimise),
        .target(name: "Training", dependencies: ["ENINet", "Tensors", "Geometry"], swiftSettings: optimise),
        .target(name: "Deck"),
        .executableTarget(
            name: "eninet-md",
            dependencies: [
                "Geometry", "Tensors", "ENINet", "Potentials", "Dynamics", "Trajectory",
                "Analysis", "Training", "Deck",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimise),

        .testTarget(name: "GeometryTests", dependencies: ["Geometry"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "ENINetTests", dependencies: ["ENINet", "Tensors", "Geometry", "Dynamics"], exclude: ["Fixtures"], swiftSettings: testSettings),
        .testTarget(name: "PotentialsTests", dependencies: ["Potentials", "Geometry"], swiftSettings: testSettings),
        .testTarget(name: "DynamicsTests", dependencies: ["Dynamics", "Potentials", "ENINet", "Geometry"], exclude: ["Scripts", "Fixtures"], swiftSettings: testSettings),
        .testTarget(name: "TrajectoryTests", dependencies: ["Trajectory", "Geometry", "CNetCDF"],
                    resources: [.copy("Fixtures")], swiftSettings: testSettings),
        .testTarget(name: "AnalysisTests", dependencies: ["Analysis", "Trajectory", "Geometry"], exclude: ["Scripts"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "ENINet", "Tensors", "Geometry"], exclude: ["Fixtures"], swiftSettings: testSettings),
        .testTarget(name: "DeckTests", dependencies: ["Deck"], resources: [.copy("Fixtures")], swiftSettings: testSettings),
        .testTarget(name: "CLITests", dependencies: ["eninet-md", "Trajectory", "Geometry", "CNetCDF", "ENINet", "Training"],
                    resources: [.copy("Fixtures")], swiftSettings: testSettings),
    ]
)
