import EdshimCore
import Foundation
import Testing

/// The server notices a shim's exit with a pidfd; where it cannot open one (Linux
/// before 5.3, a seccomp filter), it watches the shim through /proc instead.
@Suite("Watching shims without pidfd_open")
struct OwnerWatchingTests {
    /// Starts the server with `pidfd_open` failing with ENOSYS, as on Linux before 5.3:
    /// a seccomp filter, installed by python3 before it execs the server.
    static func launcherWithoutPidfd() throws -> [String] {
        let script = """
        import ctypes, os, struct, sys
        libc = ctypes.CDLL(None, use_errno=True)
        def stmt(code, k, jt=0, jf=0): return struct.pack("HBBI", code, jt, jf, k)
        program = (stmt(0x20, 0)                          # load the system call number
                   + stmt(0x15, 434, 0, 1)                # pidfd_open?
                   + stmt(0x06, 0x00050000 | 38)          # fail it with ENOSYS
                   + stmt(0x06, 0x7fff0000))              # allow everything else
        buffer = ctypes.create_string_buffer(program)
        class Program(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        fprog = Program(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
        if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
            sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
        os.execv(sys.argv[1], sys.argv[1:])
        """
        return [try SystemExecutables.python3(), "-c", script]
    }

    @Test("without pidfd_open the server registers shims, withdraws a killed one's port, and restores the live ones after a restart")
    func withoutPidfd() async throws {
        var options = Testbed.Options()
        options.serverLauncher = try Self.launcherWithoutPidfd()
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let kept = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let killed = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let keptShim = try await bed.publish(kept, to: backend.endpoint)
            let killedShim = try await bed.publish(killed, to: backend.endpoint)
            #expect(keptShim.isReady && killedShim.isReady)
            #expect(try bed.listeners().keys.sorted() == ["tcp_0.0.0.0_\(kept.port)", "tcp_0.0.0.0_\(killed.port)"].sorted(), "both ports registered and served by Envoy")
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: killed.port)).servedByEnvoy)
            let log = bed.server?.log ?? ""
            #expect(log.contains("pidfd_open failed: watching shims by reading /proc every 100 ms"), "\(log)")
            #expect(log.components(separatedBy: "pidfd_open failed").count == 2, "logged once, not per shim:\n\(log)")

            killedShim.process.signal(SIGKILL)
            _ = await killedShim.process.waitForExit(timeout: .seconds(5))
            try await bed.eventually("the killed shim's listener is withdrawn") {
                try bed.listeners().keys.sorted() == ["tcp_0.0.0.0_\(kept.port)"]
            }
            #expect(try bed.registrations().map(\.key.host.port) == [kept.port])

            // A restart keeps the live shim's registration: it is not taken for dead.
            await bed.stopServer()
            try await bed.startServer()
            #expect(try bed.registrations().map(\.key.host.port) == [kept.port], "\(bed.server?.log ?? "")")
            #expect(try bed.listeners().keys.sorted() == ["tcp_0.0.0.0_\(kept.port)"])
            try bed.expectNoRejectedUpdates()
        }
    }
}
