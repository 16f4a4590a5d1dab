/// A duration as operators write it in dockerd's environment: seconds (`90`, `0.5`)
/// or a number with a unit (`500ms`, `90s`, `2m`, `1h`). One reading for every such
/// variable, so the same text means the same time in each.
public enum DurationText {
    /// The units a duration may carry, and what one of each is in milliseconds.
    static let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]

    /// `text` in milliseconds (rounded), or nil when it is not a duration (negative,
    /// not a number, an unknown unit).
    public static func milliseconds(_ text: String) -> Int64? {
        var number = Substring(text)
        var scale = 1000.0
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            scale = unit.milliseconds
            break
        }
        // Digits and one point only: Double would also take 1e3, 0x10, +90 and inf.
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), number.filter({ $0 == "." }).count <= 1,
              let value = Double(number), value.isFinite, value * scale < Double(Int64.max) else { return nil }
        return Int64((value * scale).rounded())
    }
}
