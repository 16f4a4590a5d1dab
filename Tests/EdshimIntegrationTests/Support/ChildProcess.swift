import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A process the tests started, with the descriptors dockerd would give it.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    let logPath: String
    private let lock = NSLock()
    private var exitStatus: Int32?

    private init(pid: pid_t, logPath: String) {
        self.pid = pid
        self.logPath = logPath
    }

    /// Starts `executable` with `arguments`; `descriptors` maps child fd → our fd
    /// (dup2'd in the child); stdout and stderr go to `logPath`.
    static func spawn(
        _ executable: String,
        _ arguments: [String],
        argv0: String? = nil,
        environment: [String: String] = [:],
        descriptors: [Int32: Int32] = [:],
        logPath: String
    ) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Sources are moved high first so that no dup2 target clobbers another source.
        var moved: [Int32: Int32] = [:]
        for (target, source) in descriptors {
            let high = fcntl(source, F_DUPFD_CLOEXEC, 200)
            guard high >= 0 else { throw TestFailure("dup of fd \(source) failed") }
            moved[target] = high
        }
        defer { for fd in moved.values { close(fd) } }
        for (target, source) in moved.sorted(by: { $0.key < $1.key }) {
            posix_spawn_file_actions_adddup2(&actions, source, target)
        }
        // Nothing else crosses: descriptors other threads of the test process hold
        // (accepted sockets, pipes) would otherwise leak into the child and keep those
        // sockets open after the test closed them. Never below 3: with only fd 1 given
        // (CapturedCommand), closing from 2 took the child's stderr, and the docker CLI
        // then opened its connection to dockerd as fd 2 and wrote its warnings into the
        // HTTP stream (dockerd answered 400, the CLI died of SIGPIPE: a flaky test).
        guard posix_spawn_file_actions_addclosefrom_np(&actions, max(descriptors.keys.max() ?? 2, 2) + 1) == 0 else {
            throw TestFailure("posix_spawn_file_actions_addclosefrom_np failed")
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let argv = [argv0 ?? executable] + arguments
        let envp = env.map { "\($0.key)=\($0.value)" }
        var pid: pid_t = 0
        let result = withCStrings(argv) { argvPointers in
            withCStrings(envp) { envPointers in
                posix_spawn(&pid, executable, &actions, &attributes, argvPointers, envPointers)
            }
        }
        guard result == 0 else { throw TestFailure("posix_spawn \(executable): \(String(cString: strerror(result)))") }
        return ChildProcess(pid: pid, logPath: logPath)
    }

    func signal(_ signal: Int32) {
        if hasExited == false { kill(pid, signal) }
    }

    /// Exit status (exit code, or 128+signal) once the process ended.
    var hasExited: Bool { poll() != nil }

    func poll() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        guard result == pid else { return nil }
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        exitStatus = code
        return code
    }

    /// Waits for the exit; nil on timeout.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let code = poll() { return code }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return poll()
    }

    /// The exit status of a command expected to finish: one still running after
    /// `timeout` is stopped, and the test fails naming `command`.
    func finish(within timeout: Duration, command: @autoclosure () -> String) async throws -> Int32 {
        if let status = await waitForExit(timeout: timeout) { return status }
        await stop()
        throw TestFailure("\(command()) did not finish in \(timeout)")
    }

    /// SIGTERM, then SIGKILL if it lingers.
    func stop() async {
        guard poll() == nil else { return }
        kill(pid, SIGTERM)
        if await waitForExit(timeout: .seconds(5)) == nil {
            kill(pid, SIGKILL)
            _ = await waitForExit(timeout: .seconds(5))
        }
    }

    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }
}

/// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc
/// module does not export (a simple C signature: a pointer and an int).
@_silgen_name("posix_spawn_file_actions_addclosefrom_np")
private func posix_spawn_file_actions_addclosefrom_np(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// A failure in the test harness itself, with what went wrong.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
