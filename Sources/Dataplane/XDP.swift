/// What the program decided for a packet, after XDP's return codes.
public enum XDPAction: Int, Sendable, CaseIterable {
    /// The program failed (never returned by the service program; kept for completeness of the model).
    case aborted = 0
    /// Discard the packet.
    case drop = 1
    /// Let the packet continue (unchanged, or rewritten in place).
    case pass = 2
    /// Send `XDPContext.generated` back out of the interface the packet came in on; the packet itself goes no
    /// further (a capture shows it, unchanged, followed by the reply).
    case tx = 3
    /// Forward the rewritten packet out of another interface.
    case redirect = 4

    /// Upper-case name as XDP spells it (`XDP_PASS` without the prefix).
    public var name: String {
        switch self {
        case .aborted: "ABORTED"
        case .drop: "DROP"
        case .pass: "PASS"
        case .tx: "TX"
        case .redirect: "REDIRECT"
        }
    }
}

/// One packet as the program sees it: the frame bytes it may rewrite in place, its metadata, and a
/// scratch buffer for a packet it generates (an XDP program builds a reply in the packet buffer; keeping
/// the original intact lets a capture show both).
public struct XDPContext {
    /// The captured frame, rewritten in place.
    public var data: UnsafeMutableRawBufferPointer
    /// Frame length on the wire (more than `data.count` when the capture cut the frame).
    public var wireLength: Int
    /// Capture time, nanoseconds since the Unix epoch: the program's only clock.
    public var timestamp: Int64
    /// Room for a generated reply; at least `XDPContext.generatedCapacity` bytes.
    public var generated: UnsafeMutableRawBufferPointer
    /// Bytes of `generated` in use after a `.tx` verdict.
    public var generatedLength = 0

    /// Largest reply the program builds: link header, IPv4, ICMP and the 548 quoted bytes of icmp_send.
    public static let generatedCapacity = 1024

    public init(data: UnsafeMutableRawBufferPointer, wireLength: Int, timestamp: Int64,
                generated: UnsafeMutableRawBufferPointer)
    {
        precondition(generated.count >= Self.generatedCapacity)
        self.data = data
        self.wireLength = wireLength
        self.timestamp = timestamp
        self.generated = generated
    }
}
