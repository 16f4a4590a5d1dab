/// The server's answer to one request line.
public enum WireResponse: Equatable, Sendable {
    /// Done: registered and served, or deregistered and released.
    case ok
    /// The answer to `list` (and `lookup`): the registrations, and for `list` those
    /// taken and not answered yet (`registering`, left out of the line when none).
    case registrations([Registration], registering: [RegistrationInProgress] = [])
    /// Refused, with a reason.
    case failure(WireError)
}

extension WireResponse {
    /// The response as one JSON line, newline included.
    public var encoded: [UInt8] {
        var object: JSONObject = ["v": .integer(WireProtocol.version)]
        switch self {
        case .ok:
            object.append("ok", .bool(true))
        case .registrations(let registrations, let registering):
            object.append("ok", .bool(true))
            object.append("registrations", .array(registrations.map { .object(Self.encode($0)) }))
            object.append("registering", registering.isEmpty ? nil : .array(registering.map { .object(Self.encode($0)) }))
        case .failure(let error):
            object.append("ok", .bool(false))
            object.append("error", .object(["code": .string(error.code.rawValue), "message": .string(error.message)]))
        }
        return JSONValue.object(object).serialized + [UInt8(ascii: "\n")]
    }

    /// Decodes one response line. Unknown fields are ignored.
    public static func decode(_ line: [UInt8]) throws(WireError) -> WireResponse {
        let object = try WireDecoding.object(line, limit: WireProtocol.maximumResponseBytes)
        guard let ok = object["ok"]?.boolValue else {
            throw WireError(.badRequest, "response without \"ok\": is the socket an edshim server?")
        }
        guard ok else {
            let error = object["error"]?.objectValue
            return .failure(WireError(
                WireError.Code(rawValue: error?["code"]?.stringValue ?? "unknown"),
                error?["message"]?.stringValue ?? "the server refused without a reason"
            ))
        }
        guard let list = object["registrations"] else { return .ok }
        guard let items = list.arrayValue else {
            throw WireError(.badRequest, "\"registrations\" must be an array")
        }
        var registrations: [Registration] = []
        for item in items {
            guard let entry = item.objectValue else {
                throw WireError(.badRequest, "each registration must be an object")
            }
            registrations.append(try decodeRegistration(entry))
        }
        return .registrations(registrations, registering: try decodeRegistering(object["registering"]))
    }

    /// The registrations in progress of a listing: none when left out (a server from
    /// before they were listed).
    static func decodeRegistering(_ value: JSONValue?) throws(WireError) -> [RegistrationInProgress] {
        guard let value else { return [] }
        guard let items = value.arrayValue else {
            throw WireError(.badRequest, "\"registering\" must be an array")
        }
        var registering: [RegistrationInProgress] = []
        for item in items {
            guard let entry = item.objectValue else {
                throw WireError(.badRequest, "each registration in progress must be an object")
            }
            registering.append(RegistrationInProgress(key: try WireRequest.decodeKey(entry), owner: try decodeOwner(entry)))
        }
        return registering
    }

    static func encode(_ inProgress: RegistrationInProgress) -> JSONObject {
        var object = JSONObject()
        WireRequest.appendKey(inProgress.key, to: &object)
        appendOwner(inProgress.owner, to: &object)
        return object
    }

    static func appendOwner(_ owner: Owner, to object: inout JSONObject) {
        object.append("owner_pid", .integer(owner.pid))
        object.append("owner_start_time", .integer(owner.startTime))
    }

    static func decodeOwner(_ object: JSONObject) throws(WireError) -> Owner {
        guard let pid = try WireRequest.decodeProcessID(object, "owner_pid") else {
            throw WireError(.badRequest, "\"owner_pid\" must be a process ID, 1 or more")
        }
        return Owner(pid: pid, startTime: try WireDecoding.optionalInteger(object, "owner_start_time") ?? 0)
    }

    static func encode(_ registration: Registration) -> JSONObject {
        var object = JSONObject()
        WireRequest.appendKey(registration.key, to: &object)
        object.append("container_ip", .string(registration.container.ip.description))
        object.append("container_port", .integer(registration.container.port))
        appendOwner(registration.owner, to: &object)
        object.append("mode", .string(registration.mode.rawValue))
        object.append("named_apart", registration.namedApart ? .bool(true) : nil)
        let metadata = registration.metadata
        object.append("service", metadata.service.map(JSONValue.string))
        object.append("environment", metadata.environment.map(JSONValue.string))
        object.append("label_mode", metadata.mode.map { .string($0.rawValue) })
        object.append("container_id", metadata.containerID.map(JSONValue.string))
        object.append("container_name", metadata.containerName.map(JSONValue.string))
        return object
    }

    static func decodeRegistration(_ object: JSONObject) throws(WireError) -> Registration {
        let key = try WireRequest.decodeKey(object)
        let container = SocketEndpoint(
            ip: try WireDecoding.address(object, "container_ip"),
            port: try WireDecoding.port(object, "container_port")
        )
        let owner = try decodeOwner(object)
        guard let modeText = object["mode"]?.stringValue, let mode = ProxyMode(rawValue: modeText) else {
            throw WireError(.badRequest, "\"mode\" must be one of \(ProxyMode.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))")
        }
        let metadata = ContainerMetadata(
            service: WireDecoding.optionalString(object, "service"),
            environment: WireDecoding.optionalString(object, "environment"),
            mode: WireDecoding.optionalString(object, "label_mode").flatMap(ProxyMode.init(rawValue:)),
            containerID: WireDecoding.optionalString(object, "container_id"),
            containerName: WireDecoding.optionalString(object, "container_name")
        )
        guard let namedApart = object["named_apart"].map(\.boolValue) ?? false else {
            throw WireError(.badRequest, "\"named_apart\" must be true or false")
        }
        return Registration(
            key: key,
            container: container,
            owner: owner,
            metadata: metadata,
            mode: mode,
            namedApart: namedApart
        )
    }
}
