import Dispatch

extension Array where Element: Sendable {
    /// `transform` applied to every element on every core at once; the results in the elements' order.
    func concurrentMap<Result: Sendable>(_ transform: @Sendable (Element) -> Result) -> [Result] {
        let results = UnsafeMutableBufferPointer<Result?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer {
            _ = results.deinitialize()
            results.deallocate()
        }
        nonisolated(unsafe) let slots = results  // each iteration writes its own slot only
        DispatchQueue.concurrentPerform(iterations: count) { index in slots[index] = transform(self[index]) }
        return results.map { $0! }
    }
}
