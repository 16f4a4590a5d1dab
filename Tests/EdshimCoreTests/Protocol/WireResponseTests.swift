@testable import EdshimCore
import Testing

/// Every response encodes to one JSON line and decodes back to itself.
@Suite("WireResponse encoding and decoding")
struct WireResponseTests {
    static func fullRegistration() throws -> Registration {
        Registration(
            key: try Fixture.key("::", 8080),
            container: try Fixture.endpoint("fd00::2", 80),
            owner: Owner(pid: 31_337, startTime: 18_446_744_073_709_551_615),
            metadata: ContainerMetadata(
                service: "nginx \"front\"\nline two",
                environment: "prod/eu",
                mode: .tcp,
                containerID: "0123456789abcdef",
                containerName: "/web-1"
            ),
            mode: .tcp
        )
    }

    static func responses() throws -> [WireResponse] {
        [
            .ok,
            .registrations([]),
            .registrations([
                try fullRegistration(),
                try Fixture.registration(host: "0.0.0.0", 8080, container: "172.17.0.2", 80),
                try Fixture.registration(.udp, host: "127.0.0.1", 53, container: "172.17.0.3", 53, service: "dns", environment: "", mode: .http),
            ]),
            .failure(WireError(.addressConflict, "0.0.0.0:80 overlaps 127.0.0.1:80, owned by pid 12")),
            .failure(WireError(.envoyTimeout, "Envoy did not listen on [::]:8080 within 10s\nsecond line \"quoted\"")),
            .failure(WireError(WireError.Code(rawValue: "from_the_future"), "a code this build does not know")),
        ]
    }

    @Test func everyResponseRoundTrips() throws {
        for response in try Self.responses() {
            #expect(try WireResponse.decode(response.encoded) == response)
        }
    }

    @Test func everyResponseIsOneLineEvenWithNewlinesInStrings() throws {
        for response in try Self.responses() {
            let line = response.encoded
            #expect(line.last == UInt8(ascii: "\n"))
            #expect(line.filter { $0 == UInt8(ascii: "\n") }.count == 1)
            #expect(!line.contains(UInt8(ascii: "\r")))
        }
    }

    @Test func knownBytes() {
        #expect(Fixture.text(WireResponse.ok.encoded) == "{\"v\":1,\"ok\":true}\n")
        #expect(Fixture.text(WireResponse.failure(WireError(.notOwner, "no")).encoded)
            == "{\"v\":1,\"ok\":false,\"error\":{\"code\":\"not_owner\",\"message\":\"no\"}}\n")
    }

    @Test func fullMetadataSurvives() throws {
        let registration = try Self.fullRegistration()
        let decoded = try WireResponse.decode(WireResponse.registrations([registration]).encoded)
        guard case .registrations(let list, _) = decoded else {
            Issue.record("expected registrations, got \(decoded)")
            return
        }
        let first = try #require(list.first)
        #expect(first.metadata == registration.metadata)
        #expect(first.owner == registration.owner)
        #expect(first.mode == .tcp)
    }

    @Test func listingCarriesTheRegistrationsInProgress() throws {
        let registration = try Self.fullRegistration()
        let inProgress = [RegistrationInProgress(key: registration.key, owner: Owner(pid: 77, startTime: 5))]
        let response = WireResponse.registrations([registration], registering: inProgress)
        #expect(Fixture.text(response.encoded).contains(#""registering":[{"proto":"tcp","host_ip":"#), "\(Fixture.text(response.encoded))")
        #expect(try WireResponse.decode(response.encoded) == response)
        // None in progress: left out of the line, as a server from before them sends it.
        #expect(!Fixture.text(WireResponse.registrations([registration]).encoded).contains("registering"))
        #expect(try WireResponse.decode(Fixture.bytes(#"{"v":1,"ok":true,"registrations":[]}"#)) == .registrations([], registering: []))
        for bad in [#""registering":{}"#, #""registering":[1]"#, #""registering":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":80}]"#] {
            #expect(throws: WireError.self, "\(bad)") { try WireResponse.decode(Fixture.bytes(#"{"v":1,"ok":true,"registrations":[],"# + bad + "}")) }
        }
    }

    @Test func refusalWithoutErrorStillDecodes() throws {
        let response = try WireResponse.decode(Fixture.bytes(#"{"v":1,"ok":false}"#))
        guard case .failure(let error) = response else {
            Issue.record("expected a failure, got \(response)")
            return
        }
        #expect(error.code.rawValue == "unknown")
        #expect(!error.message.isEmpty)
    }

    @Test func ignoresUnknownFields() throws {
        let line = Fixture.bytes(#"{"v":1,"server":{"version":"9","features":["a",{"b":[]}]},"ok":true,"took_ms":3}"#)
        #expect(try WireResponse.decode(line) == .ok)
        let registration = Fixture.bytes(#"{"v":1,"ok":true,"registrations":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":80,"container_ip":"172.17.0.2","container_port":8080,"owner_pid":7,"owner_start_time":9,"mode":"http","listener_stats":{"cx":[1,2]},"future":null}]}"#)
        let expected = Registration(key: try Fixture.key("0.0.0.0", 80), container: try Fixture.endpoint("172.17.0.2", 8080), owner: Owner(pid: 7, startTime: 9), mode: .http)
        #expect(try WireResponse.decode(registration) == .registrations([expected]))
    }

    /// A listing larger than a request may be still decodes: responses have their own limit.
    @Test func largeListingsDecode() throws {
        let registrations = try (1...2_000).map { port in
            try Fixture.registration(host: "0.0.0.0", UInt16(port), container: "172.17.0.2", 80, service: "service-\(port)", environment: "environment")
        }
        let line = WireResponse.registrations(registrations).encoded
        #expect(line.count > WireProtocol.maximumRequestBytes)
        #expect(try WireResponse.decode(line) == .registrations(registrations))
    }

    @Test(arguments: [
        #"{"v":1}"#,
        #"{"v":1,"ok":"true"}"#,
        #"{"v":1,"ok":true,"registrations":5}"#,
        #"{"v":1,"ok":true,"registrations":null}"#,
        #"{"v":1,"ok":true,"registrations":[1]}"#,
        #"{"v":1,"ok":true,"registrations":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":80,"container_ip":"172.17.0.2","container_port":80,"owner_pid":7,"mode":"grpc"}]}"#,
        #"{"v":1,"ok":true,"registrations":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":80,"container_ip":"172.17.0.2","container_port":80,"mode":"http"}]}"#,
        #"{"v":1,"ok":true,"registrations":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":80,"container_ip":"172.17.0.2","container_port":80,"owner_pid":0,"mode":"http"}]}"#,
        #"{"v":1,"ok":true,"registrations":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":80,"container_ip":"172.17.0.2","container_port":80,"owner_pid":-3,"mode":"http"}]}"#,
        #"{"v":1,"ok":true,"registrations":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":0,"container_ip":"172.17.0.2","container_port":80,"owner_pid":7,"mode":"http"}]}"#,
        "[true]",
        "ok",
        "",
    ])
    func refusesMalformedResponses(_ line: String) throws {
        let error = try #require(throws: WireError.self) { try WireResponse.decode(Fixture.bytes(line)) }
        #expect(error.code == .badRequest)
    }
}
