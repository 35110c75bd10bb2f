import PacketWire

/// One network of the node, reached through one TAP device: the node's own address there (the gateway of the
/// hosts behind it), the network's prefix, and the MAC address the node answers with.
public struct NodeInterface: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var address: IPv4Address
    public var prefixLength: Int
    public var mac: MACAddress

    public init(name: String, address: IPv4Address, prefixLength: Int, mac: MACAddress) {
        precondition((1...30).contains(prefixLength))
        self.name = name
        self.address = address
        self.prefixLength = prefixLength
        self.mac = mac
    }

    /// Parses `NAME=ADDRESS/PREFIX` (`tap1=10.244.1.1/24`). The MAC is locally administered and derived from
    /// the interface's position, so the same command line always gives the same frames.
    public init?(specification: String, position: Int) {
        let parts = specification.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty else { return nil }
        guard parts[1].contains("/"), let network = IPv4Network(parts[1]), (1...30).contains(network.prefixLength),
              (0..<0xFFFF).contains(position) else { return nil }
        let (address, mask) = (network.address, network.mask)
        guard address.value & ~mask != 0, address.value | mask != UInt32.max else { return nil }
        self.init(name: String(parts[0]), address: address, prefixLength: network.prefixLength,
                  mac: MACAddress(0x0253_5600_0000 | UInt64(position + 1)))
    }

    /// The interface's network, with the node's own address in it.
    public var network: IPv4Network { IPv4Network(address: address, prefixLength: prefixLength) }

    /// Whether `other` is on this network (reachable without a router).
    public func contains(_ other: IPv4Address) -> Bool { network.contains(other) }

    public var description: String { "\(name) \(address)/\(prefixLength) \(mac)" }
}
