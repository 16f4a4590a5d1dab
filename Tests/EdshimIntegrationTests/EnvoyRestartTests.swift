import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Envoy restarted, stopped or stalled under a running server.
@Suite("Envoy restarted or stopped")
struct EnvoyRestartTests {
    @Test("Envoy restarted alone gets the whole configuration back from the xds directory")
    func envoyRestart() async throws {
        try await withTestbed { bed in
            let ports = try await bed.publishThreePorts()
            try await bed.restartEnvoy()
            try await bed.eventually("every listener is back") { try bed.listeners().count == 3 }
            for port in ports {
                #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            }
        }
    }

    @Test("Envoy stopped: edshim status marks each port it carried (closed), and the server logs it within seconds (it looked healthy); once Envoy runs again, both say so")
    func envoyDownIsReported() async throws {
        try await withTestbed { bed in
            let ports = try await bed.publishThreePorts()
            let before = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(before.status == 0 && !before.output.contains("(closed)"), "\(before.output)")
            let healthy = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(healthy.status == 0, "\(healthy.output)")
            try await bed.stopEnvoy()

            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            for port in ports {
                #expect(table.output.split(separator: "\n").contains { $0.contains(":\(port) ") && $0.contains("http (closed)") }, "\(table.output)")
            }
            #expect(table.output.contains("(closed): nothing listens on the port: is Envoy running?"), "\(table.output)")
            #expect(table.status == 0, "without --check, status reports and succeeds")
            let check = try await Binaries.run(bed.edshim, ["status", "--check", "--json"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 1, "\(check.output)")
            let named = ports.sorted().map { "0.0.0.0:\($0) (closed)" }.joined(separator: ", ")
            #expect(check.output.contains("3 of 3 TCP ports not served by Envoy as registered: \(named)"), "\(check.output)")
            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(json.output.components(separatedBy: #""served_by":"nothing""#).count == 4, "\(json.output)")
            try await bed.eventually("the server logs that the ports are closed", timeout: .seconds(20)) {
                bed.server?.log.contains("nothing listens on any of the 3 registered ports: Envoy does not run") == true
            }

            try await bed.startEnvoy()
            try await bed.eventually("every listener is back") { try bed.listeners().count == 3 }
            let after = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(after.output.components(separatedBy: #""served_by":"envoy""#).count == 4, "\(after.output)")
            let served = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(served.status == 0, "\(served.output)")
            try await bed.eventually("the server logs that they are served again", timeout: .seconds(20)) {
                bed.server?.log.contains("no registered port is closed any more") == true
            }
            #expect(bed.server?.log.components(separatedBy: "nothing listens on").count == 2, "logged once, not at every check")
        }
    }

    @Test("a port another program held when Envoy started (its listener rejected) is served once that program lets go, and not tried while it holds the port; the other listeners untouched")
    func portFreedAfterEnvoyFailedToBind() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let kept = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort())
            let held = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(kept, to: backend.endpoint).isReady)
            #expect(try await bed.publish(held, to: backend.endpoint).isReady)
            try await bed.stopEnvoy()
            // Another program takes one of the ports while Envoy is down: Envoy's bind of
            // 0.0.0.0 fails beside its 127.0.0.1 socket, and it rejects that listener.
            let squatter = try Sockets.dockerdBoundListener(SocketEndpoint(ip: .loopbackIPv4, port: held.port))
            var squatterOpen = true
            defer { if squatterOpen { close(squatter) } }
            bed.causedListenerRejections = 1
            try await bed.startEnvoy()
            try await bed.eventually("Envoy serves the other port") { try TestHTTP.get(kept).status == 200 }
            try await bed.eventually("Envoy rejected the held port's listener") { try bed.stat("listener_manager.lds.update_rejected") == 1 }
            // Closed at two checks (5 s apart), but held: not offered to Envoy again.
            try await Task.sleep(for: .seconds(11))
            #expect(try bed.stat("listener_manager.lds.update_rejected") == 1, "offered again while another program holds the port")
            #expect(bed.server?.log.contains("lds.json written again as it is") == false, "\(bed.server?.log ?? "")")

            close(squatter)
            squatterOpen = false
            try await bed.eventually("Envoy serves the port once the program let go", timeout: .seconds(15)) {
                try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: held.port)).status == 200
            }
            #expect(bed.server?.log.contains("Envoy does not listen on 1 registered ports that nothing else holds now") == true, "\(bed.server?.log ?? "")")
            #expect(try bed.stat("listener_manager.listener_modified") == 0, "a listener that did not change was replaced (drained)")
            #expect(try bed.stat("listener_manager.lds.update_rejected") == 1)
        }
    }

    @Test("a port another program took on its very address while Envoy restarted: edshim status says another program serves it, not Envoy; Envoy once the program lets go")
    func portTakenByAnotherProgramIsShown() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let host = SocketEndpoint(ip: .anyIPv4, port: try Sockets.freePort())
            #expect(try await bed.publish(host, to: backend.endpoint).isReady)
            try await bed.stopEnvoy()
            let squatter = try Sockets.dockerdBoundListener(host)
            var squatterOpen = true
            defer { if squatterOpen { close(squatter) } }
            bed.causedListenerRejections = 1
            try await bed.startEnvoy()
            try await bed.eventually("Envoy rejected the port's listener") { try bed.stat("listener_manager.lds.update_rejected") == 1 }
            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(json.output.contains(#""served_by":"other""#), "\(json.output)")
            let table = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(table.output.contains("http (other program)") && table.output.contains("(other program): another program than Envoy listens on the port"), "\(table.output)")
            // The server says so too, naming the program (this test's process), at its second check.
            try await bed.eventually("the server logs that another program holds the port", timeout: .seconds(20)) {
                bed.server?.log.contains("another program listens on 1 registered port, at the very address Envoy should") == true
            }
            #expect(bed.server?.log.contains("(pid \(getpid()))") == true, "\(bed.server?.log.suffix(2000) ?? "")")

            close(squatter)
            squatterOpen = false
            try await bed.eventually("Envoy serves the port once the program let go", timeout: .seconds(20)) {
                try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: host.port)).servedByEnvoy
            }
            let after = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(after.output.contains(#""served_by":"envoy""#), "\(after.output)")
            try await bed.eventually("the server logs that no other program holds it any more", timeout: .seconds(20)) {
                bed.server?.log.contains("no other program listens on a registered port any more") == true
            }
        }
    }

    @Test("Envoy listening but not accepting (stopped with SIGSTOP): the server logs once that connections wait unaccepted on the ports (a client still waiting, and one that gave up: CLOSE_WAIT), then that Envoy accepts again")
    func envoyNotAcceptingIsReported() async throws {
        try await withTestbed { bed in
            let ports = try await bed.publishThreePorts()
            let envoy = try #require(bed.envoy)
            envoy.signal(SIGSTOP)
            defer { envoy.signal(SIGCONT) }
            // Each thread stops on its own: a worker still running could accept first.
            try await bed.eventually("every thread of Envoy has stopped") {
                let tasks = ShimProcesses.entryNames(in: "/proc/\(envoy.pid)/task").filter { Int($0) != nil }
                return !tasks.isEmpty && tasks.allSatisfy { task in
                    ((try? String(contentsOfFile: "/proc/\(envoy.pid)/task/\(task)/stat", encoding: .utf8)) ?? "").contains(") T ")
                }
            }
            // The kernel completes the handshake; the connection waits for Envoy to accept it.
            let waiting = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: ports[1]))
            defer { close(waiting) }
            // A client that gives up at once (a health check with a short timeout): its
            // connection stays in the queue, closed by the client (CLOSE_WAIT).
            close(try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: ports[2])))
            do {
                try await bed.eventually("the server logs that connections wait unaccepted", timeout: .seconds(25)) {
                    bed.server?.log.contains("connections wait unaccepted on 2 registered ports at two checks") == true
                }
            } catch {
                let queues = ListenTable.read().filter { $0.endpoint.port == ports[1] }.map { "\($0.endpoint) queue \($0.acceptQueue)" }
                let unaccepted = ListenTable.unacceptedConnections().filter { $0.local.port == ports[1] }.map { "\($0.local) cookie \($0.cookie)" }
                let holders = PortHolders.listening(on: SocketEndpoint(ip: .anyIPv4, port: ports[1]))
                let state = (try? String(contentsOfFile: "/proc/\(envoy.pid)/stat", encoding: .utf8)) ?? "gone"
                Issue.record("listening: \(queues); holders \(holders); envoy \(envoy.pid) stat \(state.prefix(60)); unaccepted: \(unaccepted); server log:\n\(bed.server?.log.suffix(3000) ?? "")")
                throw error
            }
            #expect(bed.server?.log.contains("ports=\"0.0.0.0:\(min(ports[1], ports[2])) 0.0.0.0:\(max(ports[1], ports[2]))\"") == true || bed.server?.log.contains("ports=0.0.0.0:\(min(ports[1], ports[2])) 0.0.0.0:\(max(ports[1], ports[2]))") == true, "it names the ports: \(bed.server?.log ?? "")")
            // status --check sees it too: Envoy is stopped, so every port it listens on
            // accepts nothing, one where no connection waits yet too; the table says so.
            let check = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(check.status == 1, "\(check.output)")
            #expect(ports.allSatisfy { check.output.contains("0.0.0.0:\($0) (not accepting)") }, "\(check.output)")
            // The table's rows say it too (looked at before the table is printed).
            let rows = check.output.split(separator: "\n")
            #expect(ports.allSatisfy { port in rows.contains { $0.hasPrefix("0.0.0.0:\(port) ") && $0.contains(" http (not accepting) ") } }, "\(check.output)")
            #expect(check.output.contains("(not accepting): Envoy listens on the port but accepts no connection"), "\(check.output)")
            #expect(check.output.contains("envoy (pid \(envoy.pid)) is stopped (SIGSTOP): the ports it listens on accept no connection, and it takes no update, until it is resumed: kill -CONT \(envoy.pid)"), "\(check.output)")
            // Without --check too, in the table and in --json: a stopped Envoy is seen at once.
            let plain = try await Binaries.run(bed.edshim, ["status"], environment: bed.environment, in: bed.directory)
            #expect(plain.status == 0 && ports.allSatisfy { port in plain.output.split(separator: "\n").contains { $0.hasPrefix("0.0.0.0:\(port) ") && $0.contains(" http (not accepting) ") } }, "\(plain.output)")
            let json = try await Binaries.run(bed.edshim, ["status", "--json"], environment: bed.environment, in: bed.directory)
            #expect(json.output.components(separatedBy: #""accepting":false"#).count == ports.count + 1, "\(json.output)")
            envoy.signal(SIGCONT)
            try await bed.eventually("the server logs that Envoy accepts again", timeout: .seconds(25)) {
                bed.server?.log.contains("Envoy accepts connections again on every registered port") == true
            }
            #expect(bed.server?.log.components(separatedBy: "connections wait unaccepted").count == 2, "logged once, not at every check")
            #expect(bed.server?.log.contains("nothing listens on") == false, "the ports were never closed")
            let accepting = try await Binaries.run(bed.edshim, ["status", "--check"], environment: bed.environment, in: bed.directory)
            #expect(accepting.status == 0, "\(accepting.output)")
        }
    }
}
