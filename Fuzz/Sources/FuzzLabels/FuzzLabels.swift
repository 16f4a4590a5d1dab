import FuzzSupport

/// libFuzzer's entry point: the input as NUL-separated fields (see `LabelInput`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLabels(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    LabelProperties.check(FuzzInput.bytes(data, count))
    return 0
}

#if !FUZZING
@main
enum Replay {
    static func main() { CorpusReplay.run(LabelProperties.check) }
}
#endif
