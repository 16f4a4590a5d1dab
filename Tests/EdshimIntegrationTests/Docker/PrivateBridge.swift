import Foundation

/// A Linux bridge made for one fixture (`edsh` + 4 hex digits, a free 10.x.y.0/24,
/// gateway .1, up), given to dockerd with `--bridge`, so that it never creates or
/// touches docker0 or any other network of the machine.
struct PrivateBridge: Sendable {
    let name: String
    /// The bridge's own address, the containers' gateway: `10.x.y.1`.
    let gateway: String
    /// `10.x.y.0/24`.
    let subnet: String

    /// Creates the bridge. Refusals (no CAP_NET_ADMIN, no bridge support) come out as
    /// `DockerUnavailable`.
    static func create(ip: String, in directory: String) async throws -> PrivateBridge {
        var lastError = ""
        for _ in 0..<20 {
            let name = "edsh" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
            let taken = try await routedIPv4Prefixes(ip: ip, in: directory)
            guard let network = freeNetwork(avoiding: taken) else { continue }
            let bridge = PrivateBridge(name: name, gateway: dotted(network | 1), subnet: dotted(network) + "/24")
            let add = try await CapturedCommand.run(ip, ["link", "add", "name", name, "type", "bridge"], in: directory)
            if !add.succeeded {
                lastError = add.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
                if lastError.contains("File exists") { continue }
                throw DockerUnavailable.classify("creating bridge \(name)", detail: lastError, context: "")
            }
            for step in [["addr", "add", bridge.gateway + "/24", "dev", name], ["link", "set", name, "up"]] {
                let result = try await CapturedCommand.run(ip, step, in: directory)
                guard result.succeeded else {
                    await delete(named: name, ip: ip, in: directory)
                    throw DockerUnavailable.classify(
                        "ip \(step.joined(separator: " "))", detail: result.stderr.trimmingCharacters(in: .whitespacesAndNewlines), context: "")
                }
            }
            return bridge
        }
        throw TestFailure("could not create a private bridge: \(lastError)")
    }

    /// Deletes the bridge `name` if it exists.
    static func delete(named name: String, ip: String, in directory: String) async {
        guard FileManager.default.fileExists(atPath: "/sys/class/net/\(name)") else { return }
        _ = try? await CapturedCommand.run(ip, ["link", "del", name], in: directory)
    }

    // MARK: Choosing a network no route on this machine covers

    /// Every IPv4 prefix in any routing table, as (network, prefix length).
    private static func routedIPv4Prefixes(ip: String, in directory: String) async throws -> [(UInt32, Int)] {
        let routes = try await CapturedCommand.check(ip, ["-4", "-o", "route", "show", "table", "all"], in: directory)
        let types: Set<Substring> = ["local", "broadcast", "unicast", "unreachable", "blackhole", "prohibit", "throw", "multicast", "anycast", "nat"]
        return routes.split(separator: "\n").compactMap { line in
            guard let destination = line.split(separator: " ").first(where: { !types.contains($0) }),
                  destination != "default" else { return nil }
            let parts = destination.split(separator: "/")
            guard let address = parse(String(parts[0])) else { return nil }
            return (address, parts.count > 1 ? Int(parts[1]) ?? 32 : 32)
        }
    }

    /// A random 10.200–254.x.0/24 that overlaps none of `taken`.
    private static func freeNetwork(avoiding taken: [(UInt32, Int)]) -> UInt32? {
        for _ in 0..<100 {
            let candidate = UInt32(10) << 24 | UInt32.random(in: 200...254) << 16 | UInt32.random(in: 0...255) << 8
            let overlaps = taken.contains { network, length in
                let shorter = min(length, 24)
                let mask: UInt32 = shorter == 0 ? 0 : ~UInt32(0) << (32 - shorter)
                return candidate & mask == network & mask
            }
            if !overlaps { return candidate }
        }
        return nil
    }

    private static func parse(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".").compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        return octets.reduce(0) { $0 << 8 | UInt32($1) }
    }

    private static func dotted(_ address: UInt32) -> String {
        (0..<4).map { String(address >> (24 - 8 * $0) & 0xFF) }.joined(separator: ".")
    }
}
