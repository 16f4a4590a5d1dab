// swift-tools-version: 6.1
import PackageDescription

// libFuzzer targets for the core library (docs/fuzzing.md; run them with `make fuzz`).
//
// A package of its own, depending on the root package by path, so that the root's
// `swift build` / `make test` never compile, link or wait for anything here: each
// fuzz build is instrumented (`-sanitize=fuzzer,address`), optimized and lives in
// its own scratch path (`.build-fuzz`). Built plainly (`swift build --package-path
// Fuzz`), each target is a corpus replayer instead: `FuzzLabels FILE|DIR…` runs the
// same checks over saved inputs, without libFuzzer.

// SwiftPM names a path dependency after its directory (`edshim` in a clone, anything
// in a worktree), and a product is looked up by that name.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map { $0.lowercased() } ?? "edshim"
let core = Target.Dependency.product(name: "EdshimCore", package: root)

let package = Package(
    name: "edshim-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        // Input shaping, property checks and the corpus replayer every target shares.
        .target(name: "FuzzSupport"),
        // The shim ↔ server protocol: JSONParser, WireRequest, WireResponse, StateDocument.
        .executableTarget(name: "FuzzWireProtocol", dependencies: [core, "FuzzSupport"]),
        // docker-proxy's command line: ShimInvocation, GoFlagScanner, ModeSelection.
        .executableTarget(name: "FuzzShimArguments", dependencies: [core, "FuzzSupport"]),
        // Docker labels to Envoy names: LabelSanitizer, ContainerLabels, ServiceNaming.
        .executableTarget(name: "FuzzLabels", dependencies: [core, "FuzzSupport"]),
    ]
)
