import PacketWire

/// Builds well-formed test frames (Ethernet or other link types, IPv4, TCP or UDP) with valid checksums.
public struct PacketBuilder {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var protocolNumber: UInt8 = IPProtocol.tcp
    public var flags: TCPFlags = [.syn]
    public var sequence: UInt32 = 1000
    public var acknowledgement: UInt32 = 0
    public var window: UInt16 = 64240
    public var payload: [UInt8] = []
    public var identification: UInt16 = 0x1234
    public var timeToLive: UInt8 = 64
    public var ipOptions: [UInt8] = []
    public var tcpOptions: [UInt8] = []
    public var vlanTags: [UInt16] = []
    public var udpChecksum = true
    public var destinationMAC: UInt64 = 0x0200_0000_0001
    public var sourceMAC: UInt64 = 0x0200_0000_0002

    public init(source: String, destination: String, sourcePort: UInt16, destinationPort: UInt16,
                protocolNumber: UInt8 = IPProtocol.tcp)
    {
        self.source = IPv4Address(source)!
        self.destination = IPv4Address(destination)!
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.protocolNumber = protocolNumber
    }

    /// The IPv4 packet alone.
    public func ipPacket() -> [UInt8] {
        var transport: [UInt8]
        if protocolNumber == IPProtocol.tcp {
            let headerLength = 20 + tcpOptions.count
            transport = be16(sourcePort) + be16(destinationPort) + be32(sequence) + be32(acknowledgement)
            transport += [UInt8(headerLength / 4) << 4, flags.rawValue] + be16(window) + [0, 0, 0, 0]
            transport += tcpOptions + payload
        } else if protocolNumber == IPProtocol.icmp {
            // an echo request: identifier and sequence number in the port fields
            transport = [8, 0, 0, 0] + be16(sourcePort) + be16(destinationPort) + payload
            let sum = transport.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum($0)) }
            transport[2] = UInt8(sum >> 8)
            transport[3] = UInt8(sum & 0xFF)
        } else {
            transport = be16(sourcePort) + be16(destinationPort) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        }
        let headerLength = 20 + ipOptions.count
        var ip: [UInt8] = [0x40 | UInt8(headerLength / 4), 0] + be16(UInt16(headerLength + transport.count))
        ip += be16(identification) + [0x40, 0, timeToLive, protocolNumber, 0, 0]
        ip += be32(source.value) + be32(destination.value) + ipOptions
        let ipSum = ip.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum($0)) }
        ip[10] = UInt8(ipSum >> 8)
        ip[11] = UInt8(ipSum & 0xFF)
        if protocolNumber == IPProtocol.tcp || (protocolNumber == IPProtocol.udp && udpChecksum) {
            let pseudo = InternetChecksum.pseudoHeaderSum(source: source.value, destination: destination.value,
                                                          protocol: protocolNumber, length: transport.count)
            var sum = transport.withUnsafeBytes { InternetChecksum.finish(InternetChecksum.sum($0, initial: pseudo)) }
            if protocolNumber == IPProtocol.udp && sum == 0 { sum = 0xFFFF }
            let at = protocolNumber == IPProtocol.tcp ? 16 : 6
            transport[at] = UInt8(sum >> 8)
            transport[at + 1] = UInt8(sum & 0xFF)
        }
        return ip + transport
    }

    /// An Ethernet frame (with any VLAN tags) carrying the packet, padded to the 60-byte minimum.
    public func ethernetFrame() -> [UInt8] {
        var frame = (0..<6).map { UInt8(truncatingIfNeeded: destinationMAC >> (40 - 8 * $0)) }
            + (0..<6).map { UInt8(truncatingIfNeeded: sourceMAC >> (40 - 8 * $0)) }
        for tag in vlanTags { frame += [0x81, 0x00] + be16(tag) }
        frame += [0x08, 0x00] + ipPacket()
        while frame.count < 60 { frame.append(0) }
        return frame
    }

    /// A Linux cooked (v1) frame; `outgoing` marks it as sent by the capturing host.
    public func cookedFrame(outgoing: Bool = false) -> [UInt8] {
        be16(outgoing ? 4 : 0) + be16(1) + be16(6) + [2, 0, 0, 0, 0, 1, 0, 0] + be16(0x0800) + ipPacket()
    }
}

public func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
public func be32(_ value: UInt32) -> [UInt8] { be16(UInt16(value >> 16)) + be16(UInt16(value & 0xFFFF)) }

/// Checksum verification of a whole IPv4 packet (header, and TCP/UDP over the captured payload).
public enum ChecksumCheck {
    /// True when the IPv4 header checksum and the TCP/UDP checksum both verify.
    public static func isValid(ipPacket bytes: [UInt8]) -> Bool {
        let headerLength = Int(bytes[0] & 0x0F) * 4
        let header = bytes[0..<headerLength].withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0)) }
        guard header == 0xFFFF else { return false }
        let protocolNumber = bytes[9]
        let transport = Array(bytes[headerLength...])
        if protocolNumber == IPProtocol.udp && transport[6] == 0 && transport[7] == 0 { return true }
        let source = UInt32(bytes[12]) << 24 | UInt32(bytes[13]) << 16 | UInt32(bytes[14]) << 8 | UInt32(bytes[15])
        let destination = UInt32(bytes[16]) << 24 | UInt32(bytes[17]) << 16 | UInt32(bytes[18]) << 8
            | UInt32(bytes[19])
        let pseudo = InternetChecksum.pseudoHeaderSum(source: source, destination: destination,
                                                      protocol: protocolNumber, length: transport.count)
        return transport.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0, initial: pseudo)) } == 0xFFFF
    }
}

/// Runs `body` with a mutable raw view of a copy of `bytes`, returning the bytes afterwards.
public func withFrame<T>(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows
    -> (T, [UInt8])
{
    var copy = bytes
    let result = try copy.withUnsafeMutableBytes { try body($0) }
    return (result, copy)
}

/// A small deterministic generator for property tests (SplitMix64).
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
