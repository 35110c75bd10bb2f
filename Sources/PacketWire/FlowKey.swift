/// A connection's 5-tuple in one direction, as conntrack keys it.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var protocolNumber: UInt8

    @inlinable
    public init(source: IPv4Address, destination: IPv4Address, sourcePort: UInt16, destinationPort: UInt16,
                protocolNumber: UInt8)
    {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.protocolNumber = protocolNumber
    }

    /// The key of a packet's TCP or UDP header. (Inlined: the program keys every packet.)
    @inlinable @inline(__always)
    public init(ip: IPv4Packet, transport: TransportHeader) {
        self.init(source: ip.source, destination: ip.destination, sourcePort: transport.sourcePort,
                  destinationPort: transport.destinationPort, protocolNumber: ip.protocolNumber)
    }

    /// Hashes the tuple as two words instead of five fields (conntrack and frontend lookups run per packet).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(UInt64(source.value) << 32 | UInt64(destination.value))
        hasher.combine(UInt64(sourcePort) << 24 | UInt64(destinationPort) << 8 | UInt64(protocolNumber))
    }

    /// The same flow seen from the other end.
    public var reversed: FlowKey {
        FlowKey(source: destination, destination: source, sourcePort: destinationPort, destinationPort: sourcePort,
                protocolNumber: protocolNumber)
    }

    public var description: String {
        "\(source):\(sourcePort) > \(destination):\(destinationPort)/\(protocolNumber)"
    }
}
