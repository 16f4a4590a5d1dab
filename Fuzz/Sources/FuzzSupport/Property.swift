/// Traps, naming the property, when it does not hold: libFuzzer reports the trap as a
/// crash and saves the input that caused it.
public func require(_ holds: Bool, _ property: @autoclosure () -> String) {
    if !holds { fatalError("property violated: \(property())") }
}

/// `value` in a form that shows every control character, for property messages.
public func quoted(_ value: some CustomDebugStringConvertible) -> String {
    value.debugDescription
}
