import EdshimCore
import Logging

extension Registration {
    /// What the server's log says about this registration; `replaced` is the one it
    /// took the key from, named when another shim owned it (the same shim
    /// registering again, as resync does after a take-back, replaces nobody).
    func logMetadata(replacing replaced: Registration? = nil) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "key": "\(key)",
            "container": "\(container)",
            "owner": "\(owner)",
            "service": "\(serviceName)",
            "mode": "\(mode.rawValue)",
        ]
        // Docker gives a container's address to the next container at once: the name
        // and id say which one it was.
        if let name = self.metadata.containerName { metadata["container_name"] = "\(name)" }
        if let id = self.metadata.containerID { metadata["container_id"] = "\(id.prefix(12))" }
        if let replaced, replaced.owner != owner { metadata["replaced_owner"] = "\(replaced.owner)" }
        return metadata
    }
}
