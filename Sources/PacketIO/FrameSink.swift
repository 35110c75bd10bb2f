/// Where a run's frames go: a capture file, or a live device.
public protocol FrameSink: AnyObject {
    /// The file or device written to, for messages.
    var destination: String { get }
    /// Sends or stores one frame; `timestamp` is its capture time, nanoseconds since the Unix epoch.
    func write(_ bytes: UnsafeRawBufferPointer, wireLength: Int, timestamp: Int64)
    /// Pushes out what is buffered; throws when it cannot be stored.
    func flush() throws(CaptureError)
    /// Flushes and releases the sink.
    func close() throws(CaptureError)
}

extension PcapWriter: FrameSink {
    public var destination: String { path }
}
