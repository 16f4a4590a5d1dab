import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Shims that die leave nothing behind.
@Suite("Dead shims")
struct DeadShimTests {
    @Test("a SIGKILLed shim's listener and cluster are gone at once (its pidfd), not at a poll")
    func killedShimCleanedUp() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            let shim = try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint)
            #expect(shim.isReady)
            shim.process.signal(SIGKILL)
            _ = await shim.process.waitForExit(timeout: .seconds(5))
            try await bed.eventually("listener, cluster and registration gone", timeout: .seconds(3)) {
                try bed.listeners()["tcp_0.0.0.0_\(port)"] == nil && bed.clusters()["unknown-\(port)"] == nil && bed.registrations().isEmpty
            }
            #expect(bed.server?.log.contains("shim exited without deregistering") == true)
            #expect(Sockets.canBind(SocketEndpoint(ip: .anyIPv4, port: port)), "the port is free for the next container")
        }
    }

    @Test("forty shims SIGKILLed at once (an OOM kill of a cgroup): their ports are withdrawn together, not one after another")
    func manyKilledShimsCleanedUpTogether() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            var shims: [ShimRun] = []
            for _ in 0..<40 {
                shims.append(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort()), to: backend.endpoint))
            }
            #expect(shims.filter { !$0.isReady }.isEmpty)
            let updatesBefore = try bed.stat("listener_manager.lds.update_success")
            for shim in shims { shim.process.signal(SIGKILL) }
            try await bed.eventually("every registration withdrawn and every listener gone", timeout: .seconds(20)) {
                try bed.registrations().isEmpty && bed.listeners().isEmpty
            }
            // Counted in Envoy's listener updates rather than timed, which a loaded
            // machine would stretch: one after another, each exit was an update of its own.
            let updates = try bed.stat("listener_manager.lds.update_success") - updatesBefore
            #expect(updates <= 10, "\(updates) listener updates for forty withdrawals")
        }
    }

    @Test("an old shim's late deregistration leaves the newer registration of the same port alone")
    func lateDeregistration() async throws {
        try await withTestbed { bed in
            let first = try bed.httpBackend("first")
            let second = try bed.httpBackend("second")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            let old = try await bed.publish(host, to: first.endpoint)
            #expect(old.isReady)
            let new = try await bed.publish(host, to: second.endpoint)
            #expect(new.isReady)
            old.process.signal(SIGINT)
            #expect(await old.process.waitForExit(timeout: .seconds(1)) == 0)
            let registrations = try bed.registrations()
            #expect(registrations.map(\.owner.pid) == [new.process.pid])
            // The server answered once Envoy read the new cluster; its worker takes it a
            // moment later (longer on a loaded machine).
            try await bed.eventually("requests reach the newer registration's container", timeout: .seconds(10)) {
                try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).body.contains("backend=second")
            }
        }
    }
}
