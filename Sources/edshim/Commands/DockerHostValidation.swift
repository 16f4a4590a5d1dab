import ArgumentParser
import EdshimCore

extension DockerHost {
    /// Refuses a `--docker-host` value that is not `unix://` or `tcp://` (nil: not given).
    static func validate(option text: String?) throws {
        guard let text else { return }
        do {
            _ = try DockerHost(parsing: text)
        } catch {
            throw ValidationError("--docker-host: \(error.description)")
        }
    }
}
