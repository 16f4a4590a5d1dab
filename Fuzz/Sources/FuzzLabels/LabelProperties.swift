import EdshimCore
import FuzzSupport

/// What must hold for any labels a container can carry: every value yields names
/// Envoy accepts, and the reading follows docs/labels.md.
enum LabelProperties {
    static func check(_ bytes: [UInt8]) {
        let input = LabelInput(bytes)
        checkSanitizer(FuzzInput.text(bytes))
        input.fields.forEach(checkSanitizer)
        checkReading(input)
    }

    /// nil or a non-empty name part of at most `maximumLength` characters from
    /// [A-Za-z0-9_-], neither starting nor ending with `-` or `_`; deterministic and
    /// idempotent; nil only when the value holds no ASCII letter or digit.
    static func checkSanitizer(_ value: String) {
        let sanitized = LabelSanitizer.sanitize(value)
        require(LabelSanitizer.sanitize(value) == sanitized, "sanitize is not deterministic for \(quoted(value))")
        let hasAlphanumeric = value.utf8.contains { isAlphanumeric($0) }
        guard let sanitized else {
            require(!hasAlphanumeric, "sanitize(\(quoted(value))) is nil")
            return
        }
        let bytes = Array(sanitized.utf8)
        require(!bytes.isEmpty, "sanitize(\(quoted(value))) is empty")
        require(bytes.count <= LabelSanitizer.maximumLength, "sanitize(\(quoted(value))) is \(bytes.count) bytes long")
        require(bytes.allSatisfy(isNameByte), "sanitize(\(quoted(value))) = \(quoted(sanitized)) has a character Envoy names refuse")
        require(bytes.first.map(isAlphanumeric) == true && bytes.last.map(isAlphanumeric) == true, "sanitize(\(quoted(value))) = \(quoted(sanitized)) starts or ends with a separator")
        require(LabelSanitizer.sanitize(sanitized) == sanitized, "sanitize is not idempotent for \(quoted(value))")
    }

    /// Namespaced labels win, values blank in ASCII whitespace count as unset, modes
    /// are read trimmed and case-insensitively, and the names built from the reading
    /// are valid Envoy names.
    static func checkReading(_ input: LabelInput) {
        let id = input.fields.first
        let name = input.fields.dropFirst().first
        let reading = ContainerLabels.read(input.labels, containerID: id, containerName: name)
        let metadata = reading.metadata
        require(metadata.containerID == id && metadata.containerName == name, "container id or name changed")
        let service = expectedName(input.labels, ContainerLabels.service, ContainerLabels.legacyService)
        let environment = expectedName(input.labels, ContainerLabels.environment, ContainerLabels.legacyEnvironment)
        require(metadata.service == service.value, "service label misread")
        require(metadata.environment == environment.value, "environment label misread")
        let modeText = expectedValue(input.labels, ContainerLabels.mode, ContainerLabels.legacyMode)
        let expectedMode = modeText.flatMap { ProxyMode(rawValue: trimmed($0).lowercased()) }
        require(metadata.mode == expectedMode, "mode label \(quoted(modeText ?? "")) read as \(String(describing: metadata.mode))")
        let expectedWarnings = service.ignored + environment.ignored + (modeText != nil && expectedMode == nil ? 1 : 0)
        require(reading.warnings.count == expectedWarnings, "\(reading.warnings.count) warnings, \(expectedWarnings) expected (mode \(quoted(modeText ?? "")))")

        let registration = Registration(
            key: RegistrationKey(proto: .tcp, host: input.host),
            container: SocketEndpoint(ip: .loopbackIPv4, port: 80),
            owner: Owner(pid: 1, startTime: 0),
            metadata: metadata,
            mode: metadata.mode ?? .http
        )
        let serviceName = registration.serviceName
        require(!serviceName.isEmpty && serviceName.utf8.allSatisfy(isNameByte), "service name \(quoted(serviceName))")
        // A twin serving another container is named apart: still an Envoy name, and
        // never its twin's.
        var apart = registration
        apart.namedApart = true
        require(apart.serviceName.utf8.allSatisfy(isNameByte), "service name apart \(quoted(apart.serviceName))")
        require(apart.serviceName != serviceName, "named apart, \(quoted(serviceName)) kept its name")
        require(ServiceNaming.service(metadata).utf8.allSatisfy(isNameByte), "service \(quoted(ServiceNaming.service(metadata)))")
        require(!ServiceNaming.listenerName(for: registration.key).isEmpty, "empty listener name")
    }

    /// A name label as documented, read independently: like `expectedValue`, also
    /// skipping (with a warning each) values without an ASCII letter or digit, which
    /// name nothing.
    private static func expectedName(_ labels: [String: String], _ namespaced: String, _ legacy: String) -> (value: String?, ignored: Int) {
        var ignored = 0
        for label in [namespaced, legacy] {
            guard let value = labels[label], !trimmed(value).isEmpty else { continue }
            if value.utf8.contains(where: isAlphanumeric) { return (value, ignored) }
            ignored += 1
        }
        return (nil, ignored)
    }

    /// The documented reading, written independently: the namespaced label, else the
    /// legacy one, skipping values that are empty once ASCII whitespace is trimmed.
    private static func expectedValue(_ labels: [String: String], _ namespaced: String, _ legacy: String) -> String? {
        [namespaced, legacy].lazy.compactMap { labels[$0] }.first { !trimmed($0).isEmpty }
    }

    /// Trims spaces, tabs, CR and LF byte by byte (they are ASCII: never inside a
    /// multi-byte character).
    private static func trimmed(_ value: String) -> String {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        let bytes = Array(value.utf8)
        guard let start = bytes.firstIndex(where: { !isSpace($0) }), let end = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return FuzzInput.text(bytes[start...end])
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }

    private static func isNameByte(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }
}
