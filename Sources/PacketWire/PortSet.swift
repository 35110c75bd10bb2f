/// A set of port numbers as a 65,536-bit map (8 KiB): membership is one load and a mask, which lets the
/// per-packet path skip a hash lookup for every port that no frontend or endpoint uses.
public struct PortSet: Sendable {
    @usableFromInline var words = [UInt64](repeating: 0, count: 1024)

    public init(_ ports: some Sequence<UInt16>) {
        for port in ports { words[Int(port >> 6)] |= 1 << UInt64(port & 63) }
    }

    @inlinable @inline(__always) public func contains(_ port: UInt16) -> Bool {
        words.withUnsafeBufferPointer { $0[Int(port >> 6)] } & 1 << UInt64(port & 63) != 0
    }
}
