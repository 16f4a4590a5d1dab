import EdshimCore
import Foundation
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Envoy's access log, as `edshim server --access-log` sets it up, read where Envoy
/// writes it.
@Suite("Access log through Envoy")
struct EnvoyAccessLogTests {
    @Test("by default, a JSON line per HTTP request on Envoy's stdout, naming the service")
    func httpRequestOnStdout() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port), path: "/hello?x=1", headers: ["User-Agent": "edshim-test"])
            #expect(response.status == 200)

            let line = try await Self.line(for: "unknown-\(port)", in: bed) { bed.envoy?.log ?? "" }
            #expect(line["method"] as? String == "GET")
            #expect(line["path"] as? String == "/hello?x=1")
            #expect(line["status"] as? Int == 200)
            #expect(line["user_agent"] as? String == "edshim-test")
            #expect(line["upstream"] as? String == backend.endpoint.description)
            #expect((line["client"] as? String)?.hasPrefix("127.0.0.1:") == true)
            #expect((line["request_id"] as? String)?.isEmpty == false)
            #expect(line["details"] as? String == "via_upstream")
            #expect(line["peer"] as? String == line["client"] as? String, "no proxy in front: the peer is the client")
        }
    }

    @Test("a container that refuses the connection: the line has Envoy's flag (UF) and why it failed")
    func refusedConnectionExplained() async throws {
        try await withTestbed { bed in
            let nothingListens = SocketEndpoint(ip: .loopbackIPv4, port: try Sockets.freePort())
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: nothingListens).isReady)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 503)
            let line = try await Self.line(for: "unknown-\(port)", in: bed) { bed.envoy?.log ?? "" }
            #expect((line["flags"] as? String)?.contains("UF") == true, "\(line)")
            #expect((line["upstream_failure"] as? String)?.lowercased().contains("refused") == true, "\(line)")
            #expect(line["details"] as? String != "via_upstream", "\(line)")
        }
    }

    @Test("a client that begins its request headers and never finishes them (slowloris) is answered 408 after 10 s, which the container never sees; the line says why")
    func unfinishedHeadersTimedOut() async throws {
        try await withTestbed { bed in
            let requests = RecordedRequests()
            let backend = try bed.recordingBackend(requests)
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            let started = ContinuousClock.now
            let answer = try await onThread {
                let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: port), timeoutSeconds: 30)
                defer { close(fd) }
                try Sockets.sendAll(fd, Array("GET / HTTP/1.1\r\nHost: edshim\r\nX-Slow: ".utf8))
                return String(decoding: try Sockets.receiveToEnd(fd), as: UTF8.self)
            }
            let waited = ContinuousClock.now - started
            #expect(answer.hasPrefix("HTTP/1.1 408"), "\(answer)")
            #expect(waited >= .seconds(9) && waited < .seconds(20), "answered after \(waited)")
            #expect(requests.all.isEmpty, "the container saw \(requests.all.count) requests")
            let line = try await Self.line(for: "unknown-\(port)", in: bed) { bed.envoy?.log ?? "" }
            #expect(line["status"] as? Int == 408)
            #expect(line["details"] as? String == "request_header_timeout", "\(line)")
        }
    }

    @Test("--access-log FILE: a JSON line per TCP connection, in the file, with the bytes each way")
    func tcpConnectionInFile() async throws {
        var options = Testbed.Options()
        options.defaultMode = "tcp"
        options.startServer = false
        try await withTestbed(options) { bed in
            let file = bed.directory + "/access.log"
            try await bed.startServer(extraArguments: ["--access-log", file])
            let backend = try bed.echoBackend()
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            let payload = Array(repeating: UInt8(ascii: "x"), count: 1000)
            try await onThread {
                let fd = try Sockets.connect(SocketEndpoint(ip: .loopbackIPv4, port: port))
                defer { close(fd) }
                try Sockets.sendAll(fd, payload)
                #expect(try Sockets.receive(fd, count: payload.count) == payload)
            }

            let line = try await Self.line(for: "unknown-\(port)", in: bed) { (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
            #expect(line["bytes_received"] as? Int == 1000)
            #expect(line["bytes_sent"] as? Int == 1000)
            #expect(line["upstream"] as? String == backend.endpoint.description)
            #expect(line["method"] == nil, "no HTTP fields for a TCP connection")
            #expect(bed.envoy?.log.contains("\"service\"") == false, "nothing on stdout")
        }
    }

    @Test("--access-log off: the listeners carry no access log")
    func off() async throws {
        var options = Testbed.Options()
        options.serverArguments = ["--access-log", "off"]
        try await withTestbed(options) { bed in
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            #expect(try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port)).status == 200)
            let listeners = try String(contentsOfFile: bed.xdsDirectory + "/lds.json", encoding: .utf8)
            #expect(listeners.contains("unknown-\(port)") && !listeners.contains("access_log"))
            try await Task.sleep(for: .milliseconds(300))
            #expect(bed.envoy?.log.contains("\"service\"") == false)
        }
    }

    @Test("restarted with another --access-log, the server updates every listener in place: no request fails meanwhile")
    func settingChangeUpdatesInPlace() async throws {
        try await withTestbed { bed in
            let backend = try bed.httpBackend("web")
            var targets: [SocketEndpoint] = []
            for _ in 0..<2 {
                let port = try Sockets.freePort()
                #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
                targets.append(SocketEndpoint(ip: .loopbackIPv4, port: port))
            }
            let inPlaceBefore = try bed.stat("listener_manager.listener_in_place_updated")

            // Requests all along, from before the server stops until Envoy has the new listeners.
            let tally = RequestTally()
            let load = Thread.run { [targets] in
                while !tally.stop.load(ordering: .relaxed) {
                    for target in targets {
                        let answered = (try? TestHTTP.get(target).status) == 200
                        tally.outcomes.withLock { $0.append(answered) }
                    }
                }
            }
            // Stopped on every way out: left running after a failure below, it would
            // spin on refused connections through the rest of the run.
            defer {
                tally.stop.store(true, ordering: .relaxed)
                load.wait()
            }
            await bed.stopServer()
            try await bed.startServer(extraArguments: ["--access-log", "off"])
            try await bed.eventually("Envoy updated both listeners in place") {
                try bed.stat("listener_manager.listener_in_place_updated") >= inPlaceBefore + 2
            }
            try await Task.sleep(for: .milliseconds(300))
            tally.stop.store(true, ordering: .relaxed)
            let outcomes = tally.outcomes.withLock { $0 }
            #expect(outcomes.count > 10, "requests were made throughout (\(outcomes.count))")
            #expect(outcomes.allSatisfy { $0 }, "\(outcomes.filter { !$0 }.count) of \(outcomes.count) requests failed")
            #expect(!(try String(contentsOfFile: bed.xdsDirectory + "/lds.json", encoding: .utf8)).contains("access_log"))
        }
    }

    /// The first access log line for `service` in what `read` returns, waited for.
    static func line(for service: String, in bed: Testbed, _ read: () -> String) async throws -> [String: Any] {
        var found: [String: Any]?
        try await bed.eventually("an access log line for \(service)") {
            found = read().split(separator: "\n").lazy
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["service"] as? String == service }
            return found != nil
        }
        return try #require(found)
    }
}

/// What the requests of `settingChangeUpdatesInPlace` found, from their own thread.
private final class RequestTally: Sendable {
    let stop = Atomic<Bool>(false)
    let outcomes = Mutex<[Bool]>([])
}
