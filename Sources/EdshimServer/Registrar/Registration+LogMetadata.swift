import EdshimCore
import Logging

extension Registration {
    /// What the server's log says about this registration; `replaced` is the one it
    /// took the key from.
    func logMetadata(replacing replaced: Registration? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "key": "\(key)",
            "container": "\(container)",
            "owner": "\(owner)",
            "service": "\(serviceName)",
            "mode": "\(mode.rawValue)",
        ]
        if let replaced { metadata["replaced_owner"] = "\(replaced.owner)" }
        return metadata
    }
}
