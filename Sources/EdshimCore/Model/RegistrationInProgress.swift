/// A registration the server has taken and not answered yet: it reads the container's
/// labels, or waits for Envoy to listen on the port. `edshim status` shows its port as
/// being registered rather than as unserved: it is neither lost nor broken, only not
/// done (the server answers within the shim's 12 s).
public struct RegistrationInProgress: Hashable, Sendable {
    /// The published address and port.
    public var key: RegistrationKey
    /// The shim it is made for (by itself, or by `edshim resync` on its behalf).
    public var owner: Owner

    /// A registration of `key` for `owner`, in progress.
    public init(key: RegistrationKey, owner: Owner) {
        self.key = key
        self.owner = owner
    }
}
