import EdshimCore
import Foundation
import Synchronization
import Testing

/// What `edshim resync` makes of the answers a server gives in races: a stand-in
/// server answers each shim's registration as the test says.
@Suite("Resync, the server's answers")
struct ResyncAnswersTests {
    @Test("resync asks again after rate_limited; leaves out of its count a shim that deregistered meanwhile (not_registered) and one whose port a newer shim holds (not_owner); reports any other refusal of a running shim as a failure, and exits 1")
    func answersInRaces() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            var shims: [(host: SocketEndpoint, pid: Int32)] = []
            for _ in 0..<4 {
                let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
                let shim = try await bed.publish(host, to: backend.endpoint)
                #expect(shim.isReady, "\(shim.status)")
                shims.append((host, shim.process.pid))
            }
            await bed.stopServer()
            let (limited, deregistered, superseded, refused) = (shims[0].pid, shims[1].pid, shims[2].pid, shims[3].pid)
            let limitedSoFar = Mutex(0)
            let server = try ScriptedServer(socketPath: bed.socketPath) { request in
                guard case .register(let registration) = request, let pid = registration.onBehalfOf else {
                    return request == .list ? .registrations([]) : .ok
                }
                switch pid {
                case limited:
                    let times = limitedSoFar.withLock { times in
                        defer { times += 1 }
                        return times
                    }
                    return times < 3 ? .failure(WireError(.rateLimited, "too many requests; slow down and retry")) : .ok
                case deregistered: return .failure(WireError(.notRegistered, "\(registration.key) was deregistered by its shim before it was registered"))
                case superseded: return .failure(WireError(.notOwner, "\(registration.key) now belongs to a newer shim"))
                case refused: return .failure(WireError(.unavailable, "the disk refused the write"))
                default: return .failure(WireError(.badRequest, "unexpected pid \(pid)"))
                }
            }
            defer { server.stop() }

            let resync = try await Binaries.run(bed.edshim, ["resync"], environment: bed.environment, in: bed.directory)
            #expect(resync.status == 1, "\(resync.output)")
            #expect(resync.output.contains("resynced 1 of 2\n"), "two left out, one failed: \(resync.output)")
            #expect(resync.output.contains("edshim resync: pid \(refused) tcp \(shims[3].host): the disk refused the write"), "\(resync.output)")
            let reported = resync.output.split(separator: "\n").filter { $0.hasPrefix("edshim resync: pid") }
            #expect(reported.count == 1, "only the refused shim is reported: \(resync.output)")
            #expect(server.registrations(onBehalfOf: limited) == 4, "asked again after each rate_limited")
            for pid in [deregistered, superseded, refused] {
                #expect(server.registrations(onBehalfOf: pid) == 1, "asked once for pid \(pid)")
            }
        }
    }
}
