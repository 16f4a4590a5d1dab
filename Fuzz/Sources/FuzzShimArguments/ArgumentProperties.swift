import EdshimCore
import FuzzSupport

/// What must hold for any command line dockerd (or a person) can hand the shim:
/// parsing throws or succeeds, never traps, and what it accepts is what dockerd
/// would write back.
enum ArgumentProperties {
    /// `ShimInvocation`'s flags (its scanner is private; a drift shows up as a
    /// violated property, not as a silent gap).
    static let shimFlags: [String: GoFlagScanner.Kind] = [
        "proto": .value, "host-ip": .value, "host-port": .value,
        "container-ip": .value, "container-port": .value,
        "use-listen-fd": .bool, "v": .bool, "version": .bool,
    ]

    static func check(_ arguments: [String]) {
        checkInvocation(arguments)
        checkScanner(arguments)
        // The input read as a whole argv, program name first, as `main` sees it.
        if let shimArguments = ModeSelection.shimArguments(arguments) {
            require(
                shimArguments == Array(arguments.dropFirst()) || shimArguments == Array(arguments.dropFirst(2)),
                "shim arguments are not argv without the program name (and `shim`)"
            )
            checkInvocation(shimArguments)
        }
        for argument in arguments { checkValue(argument) }
    }

    /// Accepted arguments, written back in docker-proxy form, parse to the same thing.
    static func checkInvocation(_ arguments: [String]) {
        guard case .run(let shim)? = try? ShimInvocation.parse(arguments) else { return }
        require(shim.host.port > 0 && shim.container.port > 0, "port 0 accepted")
        require(
            (try? ShimInvocation.parse(shim.commandLine)) == .run(shim),
            "command line does not round-trip: \(quoted(shim.commandLine))"
        )
    }

    /// Every argument is accounted for: flags from the front, positionals as the rest.
    static func checkScanner(_ arguments: [String]) {
        guard let scan = try? GoFlagScanner(kinds: shimFlags).scan(arguments) else { return }
        require(arguments.suffix(scan.positional.count).elementsEqual(scan.positional), "positionals are not the tail of argv")
        require(scan.flags.count + scan.positional.count <= arguments.count, "more flags than arguments")
        for flag in scan.flags {
            require(shimFlags[flag.name] != nil, "undefined flag -\(quoted(flag.name)) accepted")
            if shimFlags[flag.name] == .bool {
                require(GoFlagScanner.parseBool(flag.value) != nil, "bool flag with value \(quoted(flag.value))")
            }
        }
    }

    /// Numbers and durations in any argument: in range, and printed back they parse alike.
    static func checkValue(_ argument: String) {
        if let value = GoFlagScanner.parseInt(argument) {
            require(GoFlagScanner.parseInt(String(value)) == value, "parseInt(\(quoted(argument))) = \(value) does not parse back")
        }
        if let milliseconds = try? UDPProxyOptions.parseIdleTimeout(argument, source: "fuzz") {
            require(UDPProxyOptions.idleTimeoutRangeMilliseconds.contains(milliseconds), "idle timeout \(milliseconds) ms out of range")
        }
        if let flows = try? UDPProxyOptions.parseMaxFlows(argument, source: "fuzz") {
            require(UDPProxyOptions.maxFlowsRange.contains(flows), "max flows \(flows) out of range")
        }
    }
}
