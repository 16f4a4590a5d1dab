/// The Docker labels edshim reads, and how they become `ContainerMetadata`.
///
/// Legacy names come from Nitro's Sidecar (`ServiceName`, `EnvironmentName`,
/// `ProxyMode`); the namespaced `edshim.*` names win when both are set.
public enum ContainerLabels {
    /// `edshim.service`: the service name (cluster, stat prefix, trace operation).
    public static let service = "edshim.service"
    /// `edshim.environment`: the environment, second part of the service name.
    public static let environment = "edshim.environment"
    /// `edshim.mode`: `http`, `tcp` or `http-only`.
    public static let mode = "edshim.mode"
    /// Legacy `ServiceName`.
    public static let legacyService = "ServiceName"
    /// Legacy `EnvironmentName`.
    public static let legacyEnvironment = "EnvironmentName"
    /// Legacy `ProxyMode`.
    public static let legacyMode = "ProxyMode"

    /// The longest name label kept as given (bytes); a longer one is kept as the
    /// name it gives (`LabelSanitizer`), which names everything the same, so that one
    /// container's megabyte of label does not fill the state file and every listing.
    public static let longestKeptValue = 1024

    /// What the labels say, plus warnings for values edshim could not use.
    public struct Reading: Equatable, Sendable {
        /// The metadata.
        public var metadata: ContainerMetadata
        /// One line per unusable label, naming the container and the label.
        public var warnings: [String]
    }

    /// Reads `labels` of the container `id` called `name`. Empty values count as
    /// unset, and so, with a warning, does a name with nothing a name can keep
    /// (`edshim.service="!!!"`), so that its legacy label still applies; an unknown
    /// mode is dropped (the server default applies) with a warning.
    public static func read(_ labels: [String: String], containerID: String?, containerName: String?) -> Reading {
        let container = containerName ?? containerID.map { String($0.prefix(12)) } ?? "unknown container"
        var warnings: [String] = []
        func value(_ namespaced: String, _ legacy: String, usable: (String) -> Bool = { _ in true }) -> (label: String, value: String)? {
            for label in [namespaced, legacy] {
                guard let value = labels[label], !value.trimmingASCIIWhitespace().isEmpty else { continue }
                if usable(value) { return (label, value) }
                warnings.append("container \(container): label \(label)=\(ErrorText.quoted(value)) has no ASCII letter or digit to name a service by (names keep only a-z, A-Z, 0-9, - and _); ignored")
            }
            return nil
        }
        func name(_ namespaced: String, _ legacy: String) -> String? {
            guard let given = value(namespaced, legacy, usable: { LabelSanitizer.sanitize($0) != nil })?.value else { return nil }
            // Sanitizing a sanitized name gives it back: the names are the same.
            return given.utf8.count > longestKeptValue ? LabelSanitizer.sanitize(given) : given
        }
        var mode: ProxyMode?
        if let (label, text) = value(Self.mode, legacyMode) {
            mode = ProxyMode(label: text)
            if mode == nil {
                warnings.append("container \(container): label \(label)=\(ErrorText.quoted(text)) is not a mode edshim knows (http, tcp, http-only); using the server's default mode")
            }
        }
        return Reading(
            metadata: ContainerMetadata(
                service: name(service, legacyService),
                environment: name(environment, legacyEnvironment),
                mode: mode,
                containerID: containerID,
                containerName: containerName
            ),
            warnings: warnings
        )
    }
}
