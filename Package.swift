// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "edshim",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "edshim", targets: ["edshim"]),
        // For Fuzz/, a separate package of libFuzzer targets (docs/fuzzing.md).
        .library(name: "EdshimCore", targets: ["EdshimCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Tests only: an h2c container (AsyncHTTPClient already builds it).
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
    ],
    targets: [
        // The model, the Envoy encoder, the wire protocol and docker-proxy argument
        // parsing. Depends on no mode.
        .target(
            name: "EdshimCore",
            dependencies: [
                "CEdshimLinux",
                // The Docker Engine API client (never used on the shim's path).
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Linux interfaces Swift's Glibc module leaves out (signalfd, pidfd, recvmmsg,
        // socket diagnostics).
        .target(name: "CEdshimLinux"),
        // Shim mode and the UDP proxy: runs once per published port, so it is
        // plain blocking system calls on one thread — no NIO, no Foundation.
        .target(name: "EdshimShim", dependencies: ["EdshimCore", "CEdshimLinux"]),
        // The registrar daemon: Unix socket, registry, filesystem xDS.
        .target(
            name: "EdshimServer",
            dependencies: [
                "EdshimCore",
                "CEdshimLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // The multicall binary: dispatches on argv[0] and the first argument.
        .executableTarget(
            name: "edshim",
            dependencies: [
                "EdshimCore",
                "EdshimShim",
                "EdshimServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // What both test targets share (seeded randomness).
        .target(name: "EdshimTestSupport", path: "Tests/EdshimTestSupport"),
        .testTarget(name: "EdshimCoreTests", dependencies: ["EdshimCore", "EdshimTestSupport"], resources: [.copy("Golden")]),
        .testTarget(
            name: "EdshimIntegrationTests",
            dependencies: [
                "EdshimCore",
                "EdshimTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ]
        ),
        .testTarget(name: "EdshimServerTests", dependencies: ["EdshimServer"]),
    ]
)
