import EdshimCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A disk that refuses the server's writes, as a full one would: each file
/// bind-mounted over itself in the server's own mount namespace, so that replacing it
/// (rename) fails with EBUSY, while the test and Envoy see the files as they were.
extension Testbed {
    /// Starts the server in a mount namespace of its own in which `files` refuse
    /// replacement from the start.
    func startServer(refusingWritesTo files: [String]) async throws {
        let unshare = try SystemExecutables.required("unshare", package: "util-linux")
        // $1: how many files follow; then the files; then the server's command.
        let script = #"n=$1; shift; while [ "$n" -gt 0 ]; do mount --bind "$1" "$1" || exit 1; shift; n=$((n - 1)); done; exec "$@""#
        try await startServer(launcher: [unshare, "-m", "--propagation", "private", "--", "sh", "-c", script, "sh", String(files.count)] + files)
    }

    /// Makes the running server's `files` refuse replacement again (`refused`), or take it.
    func setWrites(refused: Bool, to files: [String]) async throws {
        let server = try #require(server)
        let nsenter = try SystemExecutables.required("nsenter", package: "util-linux")
        for file in files {
            let command = refused ? ["mount", "--bind", file, file] : ["umount", file]
            let result = try await Binaries.run(nsenter, ["--mount=/proc/\(server.pid)/ns/mnt"] + command, in: directory)
            #expect(result.status == 0, "\(command.joined(separator: " ")): \(result.output)")
        }
    }

    /// SIGTERM, and the server exits with 0 within 5 s.
    func expectServerStopsAtOnce() async throws {
        let server = try #require(server)
        let stopping = ContinuousClock.now
        server.signal(SIGTERM)
        let status = await server.waitForExit(timeout: .seconds(5))
        #expect(status == 0, "exited \(String(describing: status)) after \(ContinuousClock.now - stopping)")
    }
}
