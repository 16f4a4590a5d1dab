/// A command that ran and failed: ArgumentParser prints `Error: <description>`
/// without the usage text (the command line was fine; the world was not).
struct CommandFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
