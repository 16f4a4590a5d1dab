/// How `edshim status` shows registrations.
public enum StatusReport {
    /// One JSON object per registration, in key order, as a JSON array.
    public static func json(_ registrations: [Registration]) -> String {
        let array = JSONValue.array(registrations.map { registration in
            var object = WireResponse.encode(registration)
            object.append("service_name", .string(registration.serviceName))
            object.append("listener", .string(ServiceNaming.listenerName(for: registration.key)))
            return .object(object)
        })
        return String(decoding: array.serialized, as: UTF8.self)
    }

    /// An aligned table with a header, or a sentence when there is nothing: the
    /// server's registrations, then the UDP ports that shims proxy themselves (they
    /// never register: no Envoy service, mode `udp-proxy`).
    public static func table(_ registrations: [Registration], udpShims: [ShimProcesses.Shim] = []) -> String {
        guard !registrations.isEmpty || !udpShims.isEmpty else { return "no published ports registered" }
        let header = ["HOST", "PROTO", "CONTAINER", "SERVICE", "MODE", "OWNER"]
        let registered = registrations.map { registration in
            [
                registration.key.host.description,
                registration.key.proto.rawValue,
                registration.container.description,
                registration.serviceName,
                registration.mode.rawValue,
                registration.owner.description,
            ]
        }
        let proxied = udpShims.sorted { $0.arguments.key < $1.arguments.key }.map { shim in
            [
                shim.arguments.host.description,
                shim.arguments.proto.rawValue,
                shim.arguments.container.description,
                "-",
                "udp-proxy",
                shim.owner.description,
            ]
        }
        let rows = registered + proxied
        let widths = header.indices.map { column in
            ([header] + rows).map { $0[column].count }.max() ?? 0
        }
        return ([header] + rows).map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
