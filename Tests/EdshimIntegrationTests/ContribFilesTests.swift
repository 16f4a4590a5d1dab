import Foundation
import Testing

/// The files operators copy from `contrib/` say what the docs say they do.
@Suite("contrib files")
struct ContribFilesTests {
    private func contrib(_ name: String) throws -> String {
        try String(contentsOfFile: Binaries.packageRoot + "/contrib/" + name, encoding: .utf8)
    }

    /// The `Key=value` lines of a unit, in order, comments left out.
    private func directives(_ unit: String) -> [(key: String, value: String)] {
        unit.split(separator: "\n").compactMap { line in
            guard !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<equals]), String(line[line.index(after: equals)...]))
        }
    }

    @Test("edshim.service runs the server under Type=notify, before dockerd, and resync after each start without failing the unit")
    func serverUnit() throws {
        let unit = directives(try contrib("edshim.service"))
        func values(_ key: String) -> [String] { unit.filter { $0.key == key }.map(\.value) }
        #expect(values("Type") == ["notify"])
        #expect(values("ExecStart") == ["/usr/local/bin/edshim server"])
        #expect(values("ExecStartPost") == ["-/usr/local/bin/edshim resync"])
        #expect(values("Before").first?.split(separator: " ").contains("docker.service") == true)
        #expect(values("Restart") == ["on-failure"])
    }

    @Test("envoy-edshim.service's bootstrap command produces a bootstrap Envoy validates; resync runs after each start without failing the unit")
    func envoyUnit() async throws {
        let unit = directives(try contrib("envoy-edshim.service"))
        #expect(unit.filter { $0.key == "ExecStartPost" }.map(\.value) == ["-/usr/local/bin/edshim resync"])
        let pre = try #require(unit.first { $0.key == "ExecStartPre" }?.value)
        // The bootstrap's directory is the unit's own, not the server's /run/edshim.
        #expect(unit.contains { $0.key == "RuntimeDirectory" && $0.value == "envoy-edshim" })
        // /bin/sh -c '/usr/local/bin/edshim bootstrap … --node-id %H > /run/envoy-edshim/envoy.yaml'
        let command = try #require(pre.split(separator: "'").dropFirst().first)
        let words = command.split(separator: " ").map(String.init)
        #expect(words.first == "/usr/local/bin/edshim")
        let redirect = try #require(words.firstIndex(of: ">"))
        #expect(words[redirect + 1] == "/run/envoy-edshim/envoy.yaml")
        // The admin API root's alone; its reads, for curl and Prometheus, on 9901.
        #expect(command.contains("--admin-address unix:/run/envoy-edshim/admin.sock --stats-address 127.0.0.1:9901"), "\(command)")
        #expect(unit.first { $0.key == "ExecStart" }?.value.hasPrefix("/usr/local/bin/envoy -c /run/envoy-edshim/envoy.yaml") == true)

        let directory = NSTemporaryDirectory() + "edshim-contrib-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arguments = words[1..<redirect].map { $0 == "%H" ? "test-host" : $0.replacingOccurrences(of: "/var/lib/edshim", with: directory) }
        let bootstrap = try await Binaries.run(try Binaries.edshim(), Array(arguments), in: directory)
        #expect(bootstrap.status == 0, "\(bootstrap.output)")
        try bootstrap.output.write(toFile: directory + "/envoy.yaml", atomically: true, encoding: .utf8)
        let validation = try await Binaries.run(try Binaries.envoy(), ["--mode", "validate", "-c", directory + "/envoy.yaml"], in: directory)
        #expect(validation.status == 0, "\(validation.output)")
        #expect(validation.output.contains("configuration '\(directory)/envoy.yaml' OK"), "\(validation.output)")
    }

    @Test("envoy-docker.sh runs Envoy as root (the image's entrypoint switches to its envoy user unless ENVOY_UID=0), with the unit's admin socket, mounted, and stats address")
    func envoyContainerScript() throws {
        let script = try contrib("envoy-docker.sh")
        #expect(script.contains("--user 0 -e ENVOY_UID=0"))
        #expect(script.contains("--admin-address unix:/run/envoy-edshim/admin.sock") && script.contains("--stats-address 127.0.0.1:9901"))
        #expect(script.contains("-v /run/envoy-edshim:/run/envoy-edshim"), "the admin socket reachable from the host")
    }

    @Test("daemon.json points dockerd at edshim with iptables off, and the README shows the same keys")
    func daemonConfiguration() throws {
        let text = try contrib("daemon.json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["userland-proxy"] as? Bool == true)
        #expect(object["userland-proxy-path"] as? String == "/usr/local/bin/edshim")
        #expect(object["iptables"] as? Bool == false)
        #expect(object["ip6tables"] as? Bool == false)
        let readme = try String(contentsOfFile: Binaries.packageRoot + "/README.md", encoding: .utf8)
        for line in text.split(separator: "\n") where line.contains(":") {
            let entry = line.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: ","))
            #expect(readme.contains(entry), "README's daemon.json lacks \(entry)")
        }
    }
}
