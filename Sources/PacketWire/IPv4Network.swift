/// An IPv4 prefix: an address and a prefix length (`10.244.0.0/16`). The address may have host bits set (an
/// interface's own address with its network's length); membership looks at the prefix only.
public struct IPv4Network: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var prefixLength: Int

    public init(address: IPv4Address, prefixLength: Int) {
        precondition((0...32).contains(prefixLength))
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `ADDRESS/LENGTH`; a bare address is a /32.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPv4Address(parts[0]) else { return nil }
        guard parts.count == 2 else {
            self.init(address: address, prefixLength: 32)
            return
        }
        guard let length = Int(parts[1]), (0...32).contains(length) else { return nil }
        self.init(address: address, prefixLength: length)
    }

    /// The mask as an integer (`/24` is 0xFFFFFF00).
    public var mask: UInt32 { prefixLength == 0 ? 0 : UInt32.max << (32 - prefixLength) }

    /// Whether `other` is inside the prefix.
    public func contains(_ other: IPv4Address) -> Bool { (other.value ^ address.value) & mask == 0 }

    public var description: String { "\(address)/\(prefixLength)" }
}
