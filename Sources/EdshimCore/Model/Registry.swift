/// The set of live registrations, one per key. A value type: the server keeps one
/// behind an actor and hands out copies as snapshots.
public struct Registry: Hashable, Sendable {
    private var entries: [RegistrationKey: Registration] = [:]

    /// An empty registry.
    public init() {}

    /// A registry holding `registrations` (later ones replace earlier ones of the same
    /// key), named as they were, except that two containers never share a name: of
    /// those that would (a state file edited by hand, or another program's), all but
    /// the first by key are named apart.
    public init(_ registrations: [Registration]) {
        for registration in registrations { entries[registration.key] = registration }
        var sharing: [String: Registration] = [:]
        for key in entries.keys.sorted() {
            guard let registration = entries[key], !registration.namedApart else { continue }
            let name = registration.contractServiceName
            guard let first = sharing[name] else {
                sharing[name] = registration
                continue
            }
            if !first.servesTheSameContainer(as: registration) { entries[key]?.namedApart = true }
        }
    }

    /// What `deregister` did.
    public enum Removal: Equatable, Sendable {
        /// The caller's registration is gone.
        case removed(Registration)
        /// Nothing is registered under the key.
        case notRegistered
        /// The key belongs to another owner (a newer registration): left in place.
        case ownedByAnother(Owner)
    }

    /// Adds or replaces the registration for its key, deciding whether it is
    /// `namedApart`; returns the one it replaced.
    @discardableResult
    public mutating func register(_ registration: Registration) -> Registration? {
        var named = registration
        named.namedApart = namedApart(registration)
        return entries.updateValue(named, forKey: registration.key)
    }

    /// Twins (`0.0.0.0:P` and `[::]:P`) of one container share the contract's name.
    /// A twin serving another container keeps the name it has and this one is named
    /// apart (`web-8080-3f2a9c1b7d0e`): two containers must never share a cluster. The
    /// choice stays while the container does, so a listener is never renamed
    /// because its twin came or went.
    private func namedApart(_ registration: Registration) -> Bool {
        let name = registration.contractServiceName
        if let replaced = entries[registration.key], replaced.contractServiceName == name, replaced.servesTheSameContainer(as: registration) {
            return replaced.namedApart
        }
        let twins = entries.values.filter { $0.key != registration.key && $0.contractServiceName == name }
        if let twin = twins.first(where: { $0.servesTheSameContainer(as: registration) }) {
            return twin.namedApart
        }
        return twins.contains { !$0.namedApart }
    }

    /// Removes the registration for `key` only if `owner` owns it.
    public mutating func deregister(_ key: RegistrationKey, owner: Owner) -> Removal {
        guard let current = entries[key] else { return .notRegistered }
        guard current.owner == owner else {
            return .ownedByAnother(current.owner)
        }
        entries[key] = nil
        return .removed(current)
    }

    /// Removes whatever is registered for `key`.
    @discardableResult
    public mutating func remove(_ key: RegistrationKey) -> Registration? {
        entries.removeValue(forKey: key)
    }

    /// The registration for `key`, if any.
    public subscript(key: RegistrationKey) -> Registration? { entries[key] }

    /// Registrations under other keys that could not be bound together with `key`.
    public func overlapping(_ key: RegistrationKey) -> [Registration] {
        entries.values.filter { $0.key != key && $0.key.overlaps(key) }.sorted { $0.key < $1.key }
    }

    /// The registrations `owner` holds (a shim holds one; unordered).
    public func registrations(ownedBy owner: Owner) -> [Registration] {
        entries.values.filter { $0.owner == owner }
    }

    /// Every registration, ordered by key.
    public var registrations: [Registration] {
        entries.values.sorted { $0.key < $1.key }
    }

    /// The number of registrations.
    public var count: Int { entries.count }
}
