/// Field readers shared by request and response decoding.
enum WireDecoding {
    static func object(_ line: [UInt8], limit: Int) throws(WireError) -> JSONObject {
        guard line.count <= limit else {
            throw WireError(.tooLarge, "message of \(line.count) bytes exceeds the \(limit)-byte limit")
        }
        var body = line[...]
        if body.last == UInt8(ascii: "\n") { body = body.dropLast() }
        let value: JSONValue
        do {
            value = try JSONParser.parse(Array(body))
        } catch {
            throw WireError(.badRequest, "malformed JSON: \(error)")
        }
        guard let object = value.objectValue else {
            throw WireError(.badRequest, "a message must be a JSON object")
        }
        return object
    }

    static func address(_ object: JSONObject, _ name: String) throws(WireError) -> IPAddress {
        guard let text = object[name]?.stringValue, let address = IPAddress(text) else {
            throw WireError(.badRequest, "\"\(name)\" must be an IPv4 or IPv6 address")
        }
        return address
    }

    static func port(_ object: JSONObject, _ name: String) throws(WireError) -> UInt16 {
        guard let port = object[name]?.integerValue(UInt16.self), port > 0 else {
            throw WireError(.badRequest, "\"\(name)\" must be a port between 1 and 65535")
        }
        return port
    }

    static func optionalInteger<T: FixedWidthInteger>(_ object: JSONObject, _ name: String) throws(WireError) -> T? {
        guard let value = object[name], value != .null else { return nil }
        guard let integer = value.integerValue(T.self) else {
            // The range, as a value out of it (-1 for an unsigned field, a PID past
            // Int32) is an integer all the same.
            throw WireError(.badRequest, "\"\(name)\" must be an integer from \(T.min) to \(T.max)")
        }
        return integer
    }

    static func optionalString(_ object: JSONObject, _ name: String) -> String? {
        object[name]?.stringValue
    }
}
