import EdshimCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `edshim server --tracing-otlp`: Envoy traces every HTTP request and exports the
/// spans to a collector over OTLP/HTTP.
@Suite("Tracing through Envoy")
struct EnvoyTracingTests {
    @Test("each request is a span of the labelled service, exported to the collector; the container gets its traceparent")
    func spansReachTheCollector() async throws {
        let docker = try FakeDockerEngine(socketPath: "/tmp/edshim-fake-docker-\(getpid())-tracing.sock")
        defer { docker.stop() }
        var options = Testbed.Options()
        options.startServer = false
        try await withTestbed(options) { bed in
            let exports = RecordedRequests()
            let collector = try bed.recordingBackend(exports)
            try await bed.startServer(extraArguments: ["--docker-host", "unix://\(docker.socketPath)", "--tracing-otlp", "http://\(collector.endpoint)"])
            let container = try #require(IPAddress("127.0.0.2"))
            let backend = try bed.httpBackend("web", on: container)
            docker.set(container, labels: ["ServiceName": "web", "EnvironmentName": "prod"])
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)

            let response = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port))
            #expect(response.status == 200)
            #expect(response.headers["x-envoy-decorator-operation"] == nil, "the service label leaks to clients: \(response.headers)")
            #expect(!response.body.lowercased().contains("x-envoy-decorator-operation"), "the container got the span name: \(response.body)")
            // W3C: 00-<trace id, 32 hex>-<span id, 16 hex>-<flags>
            let parts = Self.traceparent(of: response.body)
            #expect(parts.count == 4 && parts.first == "00" && parts.last == "01", "the container got traceparent \(parts.joined(separator: "-").debugDescription)")
            let traceID = try #require(parts.count == 4 ? Self.bytes(hex: parts[1]) : nil)
            #expect(traceID.count == 16)
            // Envoy's OpenTelemetry tracer adds an empty tracestate (docs/operations.md, "Tracing").
            #expect(response.body.split(separator: "\n").contains("tracestate="), "the container's tracestate: \(response.body)")

            // Envoy exports in batches, by default every 5 s.
            try await bed.eventually("the collector received the request's span", timeout: .seconds(15)) {
                exports.all.contains { $0.body.firstRange(of: traceID) != nil }
            }
            let export = try #require(exports.all.first { $0.body.firstRange(of: traceID) != nil })
            #expect(export.path == "/v1/traces")
            #expect(export.headers["content-type"] == "application/x-protobuf")
            for text in ["service.name", "web", "edshim.service", "web-prod-\(port)", "deployment.environment.name", "prod"] {
                #expect(export.body.firstRange(of: Array(text.utf8)) != nil, "the exported span carries \(text)")
            }

            // A request that comes with a trace stays in it.
            let incoming = "4bf92f3577b34da6a3ce929d0e0e4736"
            let continued = try TestHTTP.get(SocketEndpoint(ip: .loopbackIPv4, port: port), headers: ["traceparent": "00-\(incoming)-00f067aa0ba902b7-01"])
            #expect(continued.body.contains("traceparent=00-\(incoming)-"), "\(continued.body)")
        }
    }

    @Test("--tracing-sample 0: no request is traced; one that arrives in a sampled trace keeps its trace id, marked not sampled")
    func sampling() async throws {
        var options = Testbed.Options()
        options.startServer = false
        try await withTestbed(options) { bed in
            let exports = RecordedRequests()
            let collector = try bed.recordingBackend(exports)
            try await bed.startServer(extraArguments: ["--tracing-otlp", "http://\(collector.endpoint)", "--tracing-sample", "0"])
            let backend = try bed.httpBackend("web")
            let port = try Sockets.freePort()
            #expect(try await bed.publish(SocketEndpoint(ip: .anyIPv4, port: port), to: backend.endpoint).isReady)
            let target = SocketEndpoint(ip: .loopbackIPv4, port: port)

            let own = Self.traceparent(of: try TestHTTP.get(target).body)
            #expect(own.count == 4 && own.last == "00", "not sampled: \(own)")
            let incoming = "4bf92f3577b34da6a3ce929d0e0e4736"
            let joined = Self.traceparent(of: try TestHTTP.get(target, headers: ["traceparent": "00-\(incoming)-00f067aa0ba902b7-01"]).body)
            #expect(joined.count == 4 && joined[1] == incoming && joined.last == "00", "Envoy's decision wins: \(joined)")

            // Envoy exports every 5 s: after 6, anything sampled would be there.
            try await Task.sleep(for: .seconds(6))
            #expect(exports.all.isEmpty, "nothing was exported: \(exports.all.map(\.path))")
        }
    }

    /// The parts of the `traceparent` the backend echoed in its body.
    static func traceparent(of body: String) -> [Substring] {
        (body.split(separator: "\n").first { $0.hasPrefix("traceparent=") }?.dropFirst("traceparent=".count) ?? "").split(separator: "-")
    }

    @Test("bad tracing flags are refused with what to give instead", arguments: [
        (["--tracing-otlp", "https://collector:4318"], "https is not supported"),
        (["--tracing-otlp", "collector:4318"], "must be http://HOST[:PORT][/PATH]"),
        (["--tracing-sample", "10"], "--tracing-sample needs --tracing-otlp"),
        (["--tracing-otlp", "http://127.0.0.1:4318", "--tracing-sample", "101"], "a percentage from 0 to 100"),
    ])
    func refused(_ arguments: [String], _ expected: String) async throws {
        let result = try await Binaries.run(try Binaries.edshim(), ["server"] + arguments, in: NSTemporaryDirectory())
        #expect(result.status != 0)
        #expect(result.output.contains(expected), "\(result.output)")
    }

    /// The bytes `hex` spells, two digits each; nil when it is not hex.
    static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex)
        guard digits.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(digits[index...index + 1]), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
