/// One end of a flow: an address, a port and the transport protocol.
public struct TransportEndpoint: Hashable, Sendable {
    public let address: IPv4Address
    public let port: UInt16
    public let protocolNumber: UInt8

    public init(address: IPv4Address, port: UInt16, protocolNumber: UInt8) {
        self.address = address
        self.port = port
        self.protocolNumber = protocolNumber
    }

    /// The three in one word, which is what is hashed.
    private var word: UInt64 { UInt64(address.value) << 24 | UInt64(port) << 8 | UInt64(protocolNumber) }

    public func hash(into hasher: inout Hasher) { hasher.combine(word) }

    /// As a key of a `Dictionary` or `Set`, looked up per packet: see `FlowHash.tableHash`.
    public func _rawHashValue(seed: Int) -> Int { FlowHash.tableHash(word, seed: seed) }
}

extension FlowKey {
    /// The end that sent the packet.
    public var sourceEndpoint: TransportEndpoint {
        TransportEndpoint(address: source, port: sourcePort, protocolNumber: protocolNumber)
    }

    /// The end the packet goes to.
    public var destinationEndpoint: TransportEndpoint {
        TransportEndpoint(address: destination, port: destinationPort, protocolNumber: protocolNumber)
    }
}
