@testable import EdshimCore
import Testing

@Suite("Container labels")
struct ContainerLabelsTests {
    @Test("legacy Sidecar labels name the service")
    func legacyLabels() {
        let reading = ContainerLabels.read(["ServiceName": "web", "EnvironmentName": "prod", "ProxyMode": "tcp"], containerID: "abc", containerName: "web1")
        #expect(reading.metadata == ContainerMetadata(service: "web", environment: "prod", mode: .tcp, containerID: "abc", containerName: "web1"))
        #expect(reading.warnings.isEmpty)
    }

    @Test("namespaced labels win over legacy ones")
    func namespacedWins() {
        let reading = ContainerLabels.read([
            "ServiceName": "old", "edshim.service": "new",
            "EnvironmentName": "staging", "edshim.environment": "prod",
            "ProxyMode": "tcp", "edshim.mode": "http",
        ], containerID: nil, containerName: nil)
        #expect(reading.metadata.service == "new")
        #expect(reading.metadata.environment == "prod")
        #expect(reading.metadata.mode == .http)
    }

    @Test("a name label over 1 KiB is kept as the name it gives, which names the port exactly as the whole value does; up to 1 KiB it is kept as given")
    func hugeNameKeptAsItsName() throws {
        let huge = "Web Service " + String(repeating: "x", count: 1_000_000)
        let reading = ContainerLabels.read(["ServiceName": huge, "edshim.environment": "prod/" + huge], containerID: nil, containerName: nil)
        #expect(reading.metadata.service?.utf8.count ?? 0 <= LabelSanitizer.maximumLength)
        #expect(reading.metadata.environment?.utf8.count ?? 0 <= LabelSanitizer.maximumLength)
        let key = try Fixture.key("0.0.0.0", 8080)
        let whole = ContainerMetadata(service: huge, environment: "prod/" + huge, mode: nil, containerID: nil, containerName: nil)
        #expect(ServiceNaming.serviceName(for: key, metadata: reading.metadata) == ServiceNaming.serviceName(for: key, metadata: whole))
        let kept = String(repeating: "y", count: ContainerLabels.longestKeptValue)
        #expect(ContainerLabels.read(["ServiceName": kept], containerID: nil, containerName: nil).metadata.service == kept)
    }

    @Test("an empty namespaced label falls back to the legacy one")
    func emptyNamespaced() {
        let reading = ContainerLabels.read(["edshim.service": "  ", "ServiceName": "web"], containerID: nil, containerName: nil)
        #expect(reading.metadata.service == "web")
    }

    @Test("a name label with nothing usable is ignored with a warning, and the legacy label applies")
    func unusableNamespaced() throws {
        let reading = ContainerLabels.read(["edshim.service": "!!!", "ServiceName": "web", "edshim.environment": "ü"], containerID: nil, containerName: "api")
        #expect(reading.metadata.service == "web")
        #expect(reading.metadata.environment == nil)
        #expect(reading.warnings.count == 2, "\(reading.warnings)")
        #expect(reading.warnings.first?.contains(#"container api: label edshim.service="!!!" has no ASCII letter or digit"#) == true, "\(reading.warnings)")
    }

    @Test("modes are read case-insensitively and trimmed", arguments: [("HTTP", ProxyMode.http), (" tcp\n", .tcp), ("Tcp", .tcp)])
    func modeSpelling(text: String, mode: ProxyMode) {
        #expect(ContainerLabels.read(["ProxyMode": text], containerID: nil, containerName: nil).metadata.mode == mode)
    }

    @Test("an unknown mode is dropped with a warning naming the container and the label")
    func unknownMode() throws {
        let reading = ContainerLabels.read(["edshim.mode": "grpc\n\"x\""], containerID: "0123456789abcdef", containerName: "api")
        #expect(reading.metadata.mode == nil)
        let warning = try #require(reading.warnings.first)
        #expect(warning.contains("container api"))
        #expect(warning.contains("edshim.mode"))
        #expect(warning.contains(#""grpc\u{a}\"x\"""#))
        #expect(!warning.contains("\n"), "one log line")
    }

    @Test("no labels: nothing known")
    func noLabels() {
        let reading = ContainerLabels.read([:], containerID: "id", containerName: nil)
        #expect(reading.metadata == ContainerMetadata(containerID: "id"))
    }
}

@Suite("Docker host")
struct DockerHostTests {
    @Test("unix sockets become http+unix URLs with the path percent-encoded")
    func unixSocket() throws {
        let host = try DockerHost(parsing: "unix:///var/run/docker.sock")
        #expect(host.transport == .unixSocket("/var/run/docker.sock"))
        #expect(host.url("/_ping") == "http+unix://%2Fvar%2Frun%2Fdocker.sock/_ping")
    }

    @Test("tcp hosts become http URLs")
    func tcp() throws {
        #expect(try DockerHost(parsing: "tcp://10.0.0.1:2375").url("/v1.41/networks") == "http://10.0.0.1:2375/v1.41/networks")
        #expect(try DockerHost(parsing: "tcp://[::1]:2375").url("/x") == "http://[::1]:2375/x")
        #expect(try DockerHost(parsing: "tcp://[fd00::5]").url("/x") == "http://[fd00::5]:2375/x")
    }

    @Test("a tcp host without a port or host is completed as the Docker CLI does", arguments: [
        ("tcp://10.0.0.1", "http://10.0.0.1:2375/_ping"),
        ("tcp://docker.internal/", "http://docker.internal:2375/_ping"),
        ("tcp://:2376", "http://localhost:2376/_ping"),
    ])
    func completed(text: String, url: String) throws {
        #expect(try DockerHost(parsing: text).url("/_ping") == url)
    }

    @Test("other forms are refused with what to write", arguments: [
        "http://x", "unix://relative.sock", "tcp://h:0", "tcp://h:", "tcp://h:x", "tcp://[::1", "tcp://[]:2375", "tcp://[::1]x", "tcp://[::1]:99999",
        // IPv6 without brackets: is the last group the port? The Docker CLI refuses it too.
        "tcp://::1", "tcp://::1:2375", "tcp://2001:db8::5",
        "ssh://me@host", "npipe:////./pipe/docker_engine", "/var/run/docker.sock",
    ])
    func refused(text: String) {
        #expect(throws: ArgumentError.self) { try DockerHost(parsing: text) }
    }

    @Test("an unsupported scheme is named in the refusal")
    func unsupportedScheme() {
        #expect { try DockerHost(parsing: "ssh://me@host") } throws: { error in
            "\(error)".contains("ssh:// is not supported") && "\(error)".contains("unix:///var/run/docker.sock")
        }
    }
}

@Suite("Subnet")
struct SubnetTests {
    @Test("containment by prefix", arguments: [
        ("172.17.0.0/16", "172.17.3.4", true),
        ("172.17.0.0/16", "172.18.0.1", false),
        ("10.0.0.0/8", "10.255.255.255", true),
        ("192.168.1.128/25", "192.168.1.127", false),
        ("0.0.0.0/0", "8.8.8.8", true),
        ("fd00::/64", "fd00::2", true),
        ("fd00::/64", "fd00:0:0:1::2", false),
        ("172.17.0.0/16", "::1", false),
    ])
    func contains(subnet: String, ip: String, expected: Bool) throws {
        let parsed = try #require(Subnet(subnet))
        #expect(parsed.contains(try #require(IPAddress(ip))) == expected)
    }

    @Test("malformed CIDR is nil", arguments: ["172.17.0.0", "172.17.0.0/33", "fd00::/129", "x/8", "10.0.0.0/-1"])
    func malformed(text: String) {
        #expect(Subnet(text) == nil)
    }
}

@Suite("Container names")
struct ContainerNameTests {
    @Test("the container's own name, not a legacy link alias Docker lists before it", arguments: [
        (["/app/db", "/zz"], "zz"),
        (["/web"], "web"),
        (["web"], "web"),
        (["/a/b"], "a/b"),
    ])
    func ownName(names: [String], expected: String) {
        #expect(DockerMetadataSource.ownName(names) == expected)
    }

    @Test func noNames() {
        #expect(DockerMetadataSource.ownName([]) == nil)
    }
}
