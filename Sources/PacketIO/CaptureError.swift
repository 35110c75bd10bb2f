/// A capture file problem, with the file and (when known) the 1-based packet number.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let packetNumber: Int?
    public let message: String

    public init(path: String, packetNumber: Int? = nil, message: String) {
        self.path = path
        self.packetNumber = packetNumber
        self.message = message
    }

    public var description: String {
        if let packetNumber { return "\(path): packet \(packetNumber): \(message)" }
        return "\(path): \(message)"
    }
}

/// Sizes of the classic pcap file format.
public enum PcapFormat {
    static let fileHeaderLength: Int64 = 24
    /// A record header: seconds, fraction of a second, captured length and wire length, 32 bits each.
    public static let recordHeaderLength = 16
}

/// Timestamp resolution of a capture file.
public enum TimestampPrecision: Sendable, Equatable {
    case microseconds
    case nanoseconds
}
