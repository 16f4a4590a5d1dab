import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a finished command printed, stdout and stderr apart.
struct CommandResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String

    var succeeded: Bool { status == 0 }
}

/// Runs short commands (the docker CLI, `ip`, `tar`) to completion with stdout and
/// stderr kept apart, through the harness's `ChildProcess`.
enum CapturedCommand {
    static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        in directory: String,
        timeout: Duration = .seconds(60)
    ) async throws -> CommandResult {
        let stem = directory + "/cmd-\(UUID().uuidString.prefix(8))"
        let outPath = stem + ".out", errPath = stem + ".err"
        defer {
            unlink(outPath)
            unlink(errPath)
        }
        let out = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw TestFailure("cannot create \(outPath): \(String(cString: strerror(errno)))") }
        // ChildProcess sends stdout and stderr to its log; fd 1 is then replaced by ours.
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(executable, arguments, environment: environment, descriptors: [1: out], logPath: errPath)
        } catch {
            close(out)
            throw error
        }
        close(out)
        let status = try await process.finish(within: timeout, command: "\(executable) \(arguments.joined(separator: " "))")
        // Decoded leniently: one stray byte must not cost the whole output.
        let stdout = FileManager.default.contents(atPath: outPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let stderr = FileManager.default.contents(atPath: errPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return CommandResult(status: status, stdout: stdout, stderr: stderr)
    }

    /// Like `run`, but a non-zero exit throws with the command and its stderr.
    static func check(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:],
        in directory: String,
        timeout: Duration = .seconds(60)
    ) async throws -> String {
        let result = try await run(executable, arguments, environment: environment, in: directory, timeout: timeout)
        guard result.succeeded else {
            throw TestFailure("`\(executable) \(arguments.joined(separator: " "))` exited \(result.status): \(result.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return result.stdout
    }
}
