/// Splits a command line the way Go's `flag` package does, which is how dockerd
/// and docker-proxy expect it: `-name value`, `-name=value`, `--name value`, bool
/// flags that take no separate value (`-use-listen-fd`, `-use-listen-fd=false`),
/// `--` ending the flags, and the first non-flag argument ending them too.
public struct GoFlagScanner: Sendable {
    /// Whether a flag takes a value or is a switch.
    public enum Kind: Sendable {
        /// Takes a value: `-name value` or `-name=value`.
        case value
        /// A switch: `-name` or `-name=true|false`.
        case bool
    }

    /// One flag as it appeared on the command line.
    public struct Occurrence: Equatable, Sendable {
        /// The flag name without dashes.
        public var name: String
        /// The value; for bool flags given bare, `"true"`.
        public var value: String
    }

    /// What the scan found.
    public struct Result: Equatable, Sendable {
        /// Flags in command-line order (a repeated flag appears twice; the last wins).
        public var flags: [Occurrence]
        /// Arguments after the flags.
        public var positional: [String]
        /// True when `-h`, `-help` or `--help` was given.
        public var helpRequested: Bool
    }

    /// The flags this command defines.
    public let kinds: [String: Kind]

    /// Creates a scanner for the given flags.
    public init(kinds: [String: Kind]) {
        self.kinds = kinds
    }

    /// Scans `arguments` (without the program name).
    public func scan(_ arguments: [String]) throws(ArgumentError) -> Result {
        var result = Result(flags: [], positional: [], helpRequested: false)
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                result.positional = Array(arguments[index...])
                return result
            }
            guard argument.count > 1, argument.hasPrefix("-") else {
                result.positional = Array(arguments[(index - 1)...])
                return result
            }
            var body = Substring(argument.dropFirst())
            if body.hasPrefix("-") { body = body.dropFirst() }
            guard let first = body.first, first != "-", first != "=" else {
                throw ArgumentError("bad flag syntax: \(argument)")
            }
            let name: String
            var inlineValue: String?
            if let equals = body.firstIndex(of: "=") {
                name = String(body[..<equals])
                inlineValue = String(body[body.index(after: equals)...])
            } else {
                name = String(body)
            }
            guard let kind = kinds[name] else {
                if name == "h" || name == "help" {
                    result.helpRequested = true
                    return result
                }
                throw ArgumentError("flag provided but not defined: -\(name) (edshim shim -h lists the flags)")
            }
            switch kind {
            case .bool:
                let value = inlineValue ?? "true"
                guard Self.parseBool(value) != nil else {
                    throw ArgumentError("invalid boolean value \"\(value)\" for -\(name): use true or false")
                }
                result.flags.append(Occurrence(name: name, value: value))
            case .value:
                if let inlineValue {
                    result.flags.append(Occurrence(name: name, value: inlineValue))
                } else if index < arguments.count {
                    result.flags.append(Occurrence(name: name, value: arguments[index]))
                    index += 1
                } else {
                    throw ArgumentError("flag needs an argument: -\(name)")
                }
            }
        }
        return result
    }

    /// Go's `strconv.ParseInt(text, 0, 64)`, which `flag.Int` uses: optional sign,
    /// then decimal, `0x` hex, `0o` or leading-`0` octal, or `0b` binary; `_` may
    /// separate digits, and follow a base prefix or an octal number's leading 0.
    public static func parseInt(_ text: String) -> Int? {
        var body = Substring(text)
        var negative = false
        if let sign = body.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            body = body.dropFirst()
        }
        var radix = 10
        var prefixed = false
        let lower = body.lowercased()
        if lower.hasPrefix("0x") {
            radix = 16
        } else if lower.hasPrefix("0o") {
            radix = 8
        } else if lower.hasPrefix("0b") {
            radix = 2
        } else if body.count > 1, body.first == "0" {
            // Leading-0 octal: the 0 counts as a digit, so `_` may follow it (0_70).
            radix = 8
            body = body.dropFirst()
            prefixed = true
        }
        if radix != 10, lower.hasPrefix("0x") || lower.hasPrefix("0o") || lower.hasPrefix("0b") {
            body = body.dropFirst(2)
            prefixed = true
        }
        // Underscores only between digits, or right after a base prefix.
        guard prefixed || !body.hasPrefix("_"), !body.hasSuffix("_"), !body.contains("__") else { return nil }
        body = Substring(body.filter { $0 != "_" })
        guard !body.isEmpty, body.allSatisfy({ $0.isHexDigit }), let magnitude = Int(body, radix: radix) else { return nil }
        return negative ? -magnitude : magnitude
    }

    /// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
    public static func parseBool(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": true
        case "0", "f", "F", "FALSE", "false", "False": false
        default: nil
        }
    }
}

/// A command line that cannot be run, with a reason meant for the person who typed it.
public struct ArgumentError: Error, Equatable, Sendable, CustomStringConvertible {
    /// One line: what is wrong and, where it helps, what to do.
    public var description: String

    /// Creates an error with a one-line reason.
    public init(_ description: String) {
        self.description = description
    }
}
