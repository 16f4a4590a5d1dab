import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The machine refuses to run dockerd or containers (privileges, cgroups, namespaces,
/// mounts, bridges) — not a fault of edshim. Tests that meet it print `SKIPPED:` and
/// are recorded as cancelled, never as passed. `EDSHIM_REQUIRE_DOCKER=1` (for CI
/// machines known to run Docker) turns it into a failure.
struct DockerUnavailable: Error, CustomStringConvertible {
    var reason: String

    var description: String { "Docker cannot run here: \(reason)" }

    /// Words the kernel and the container runtimes use when they refuse; matched only
    /// against failures before any port is published, where edshim plays no part.
    private static let refusals = [
        "operation not permitted", "permission denied", "cgroup", "namespace", "not supported",
        "no such device", "function not implemented", "read-only file system", "root privileges",
        "pivot_root", "failed to mount", "unshare", "seccomp", "apparmor", "graphdriver",
    ]

    /// The fixture's verdict on a failure while bringing Docker up: `DockerUnavailable`
    /// when `detail` (an error message or a log line) reads like the machine refusing,
    /// else a plain failure carrying `context` (the logs).
    static func classify(_ what: String, detail: String, context: String) -> any Error {
        let lowered = detail.lowercased()
        if refusals.contains(where: lowered.contains) {
            return DockerUnavailable(reason: "\(what): \(detail)")
        }
        return TestFailure("\(what): \(detail)\n\(context)")
    }

    /// The line of a daemon log that says why it stopped: its last fatal line, else
    /// its last error line, else its last three lines.
    static func reason(inLog log: String) -> String {
        let lines = log.split(separator: "\n").map(String.init)
        return lines.last { $0.contains("level=fatal") || $0.contains("failed to start daemon") }
            ?? lines.last { $0.contains("level=error") }
            ?? lines.suffix(3).joined(separator: " / ").nonEmpty ?? "(empty log)"
    }

    /// Reports the skip loudly (stderr, the word SKIPPED) and cancels the current test,
    /// so that it is listed as cancelled rather than passed.
    func skip(sourceLocation: SourceLocation = #_sourceLocation) throws -> Never {
        if ProcessInfo.processInfo.environment["EDSHIM_REQUIRE_DOCKER"] == "1" {
            throw TestFailure("EDSHIM_REQUIRE_DOCKER=1, but \(description)")
        }
        try skipLoudly(reason, sourceLocation: sourceLocation)
    }
}

private extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
