import FuzzSupport

/// libFuzzer's entry point: the input as an argv, one argument per line (or NUL).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzShimArguments(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    ArgumentProperties.check(FuzzInput.arguments(FuzzInput.bytes(data, count)))
    return 0
}

#if !FUZZING
@main
enum Replay {
    static func main() { CorpusReplay.run { ArgumentProperties.check(FuzzInput.arguments($0)) } }
}
#endif
