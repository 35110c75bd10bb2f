/// In-place view of a TCP, UDP or SCTP common header: the two ports and the checksum, which is what NAT
/// touches. TCP-only fields are read through `TCPSegment`.
public struct TransportHeader {
    public let frame: UnsafeMutableRawBufferPointer
    /// Offset of the transport header in `frame`.
    public let offset: Int
    /// `IPProtocol.tcp`, `IPProtocol.udp` or `IPProtocol.sctp`.
    public let protocolNumber: UInt8
    /// Bytes of the transport packet as sent (header and payload); SCTP's checksum covers all of them.
    public let length: Int

    /// Validates the TCP or UDP header carried by `ip` (whose payload must start a transport header).
    /// Only the fixed part must be captured (TCP options may be cut by a short snap length: NAT and
    /// tracking read the first 20 bytes); lengths are checked against the packet as sent.
    @inlinable @inline(__always)
    public init(ip: IPv4Packet) throws(WireError) {
        let frame = ip.frame
        let offset = ip.payloadOffset
        switch ip.protocolNumber {
        case IPProtocol.tcp:
            guard ip.payloadLength >= 20, frame.count >= offset + 20 else { throw .truncatedTCPHeader }
            let dataOffset = Int(frame.u8(offset + 12) >> 4) * 4
            guard dataOffset >= 20, dataOffset <= ip.payloadLength else { throw .badTCPDataOffset }
        case IPProtocol.udp:
            guard ip.payloadLength >= 8, frame.count >= offset + 8 else { throw .truncatedUDPHeader }
            // A first fragment carries only part of the datagram its length field describes.
            let length = Int(frame.u16(offset + 4))
            guard length >= 8, length <= ip.payloadLength || ip.moreFragments else { throw .badUDPLength }
        case IPProtocol.sctp:
            guard ip.payloadLength >= 12, frame.count >= offset + 12 else { throw .truncatedSCTPHeader }
        default:
            throw .notTCPOrUDP
        }
        self.frame = frame
        self.offset = offset
        self.protocolNumber = ip.protocolNumber
        length = ip.payloadLength
    }

    public var sourcePort: UInt16 { frame.u16(offset) }
    public var destinationPort: UInt16 { frame.u16(offset + 2) }

    /// Offset of the checksum field: 16 in TCP, 6 in UDP, 8 in SCTP.
    private var checksumOffset: Int {
        offset + (protocolNumber == IPProtocol.tcp ? 16 : protocolNumber == IPProtocol.udp ? 6 : 8)
    }

    /// The checksum field. A UDP checksum of zero means "no checksum" and is never updated.
    public var checksum: UInt16 { frame.u16(checksumOffset) }

    /// A freshly updated checksum as it is stored: UDP writes a computed 0 as 0xFFFF (RFC 768).
    private func storable(_ value: UInt16) -> UInt16 {
        protocolNumber == IPProtocol.udp && value == 0 ? 0xFFFF : value
    }

    /// Rewrites one end of the packet: its address in `ip` (the packet that carries this header) and its port,
    /// as the kernel's `nf_nat_ipv4_manip_pkt` does. A changed address updates the IP header checksum; this
    /// header's checksum is updated incrementally for the address (in the pseudo-header) and the port at once:
    /// one's-complement sums are associative, so it is the value `csum_replace4` then `csum_replace2` leave
    /// (a UDP checksum updated to 0 is stored as 0xFFFF, as the kernel's `CSUM_MANGLED_0`). Fields that already
    /// hold their new value are not touched.
    public func rewrite(_ end: PacketEnd, of ip: IPv4Packet, address: IPv4Address, port: UInt16) {
        let portOffset = end == .source ? offset : offset &+ 2
        let oldAddress = end == .source ? ip.source : ip.destination
        let oldPort = frame.u16(portOffset)
        let addressChanges = oldAddress != address
        let portChanges = oldPort != port
        guard addressChanges || portChanges else { return }
        // What each change adds to the checksums' sums, computed once for the IP header's and this header's.
        let addressDifference = addressChanges
            ? InternetChecksum.difference(old: oldAddress.value, new: address.value) : 0
        if addressChanges { ip.setAddress(end, to: address, difference: addressDifference) }
        if portChanges { frame.setU16(portOffset, port) }
        if protocolNumber == IPProtocol.sctp {  // no pseudo-header: only the port counts
            if portChanges { recomputeSCTPChecksum() }
            return
        }
        let checksumOffset = self.checksumOffset
        let checksum = frame.u16(checksumOffset)
        guard protocolNumber == IPProtocol.tcp || checksum != 0 else { return }  // a UDP datagram without one
        let portDifference = portChanges ? InternetChecksum.difference(old: oldPort, new: port) : 0
        let updated = InternetChecksum.apply(addressDifference &+ portDifference, to: checksum)
        frame.setU16(checksumOffset, storable(updated))
    }

    /// SCTP's CRC-32C covers the whole packet, so it is computed again (the kernel's `sctp_manip_pkt` does the
    /// same), stored least significant byte first. A packet the capture cut short keeps its checksum.
    private func recomputeSCTPChecksum() {
        guard frame.count >= offset + length else { return }
        frame.storeBytes(of: UInt32(0), toByteOffset: checksumOffset, as: UInt32.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: frame[offset..<(offset + length)]))
        frame.storeBytes(of: crc.littleEndian, toByteOffset: checksumOffset, as: UInt32.self)
    }
}

/// The sending or the receiving end of a packet.
public enum PacketEnd: Sendable {
    case source
    case destination
}

/// TCP flag bits.
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Computed and inlinable rather than stored: other modules test flags on every TCP segment, and a stored
    // static is reached through an accessor call.
    @inlinable public static var fin: TCPFlags { TCPFlags(rawValue: 0x01) }
    @inlinable public static var syn: TCPFlags { TCPFlags(rawValue: 0x02) }
    @inlinable public static var rst: TCPFlags { TCPFlags(rawValue: 0x04) }
    @inlinable public static var psh: TCPFlags { TCPFlags(rawValue: 0x08) }
    @inlinable public static var ack: TCPFlags { TCPFlags(rawValue: 0x10) }
    @inlinable public static var urg: TCPFlags { TCPFlags(rawValue: 0x20) }
    @inlinable public static var ece: TCPFlags { TCPFlags(rawValue: 0x40) }
    @inlinable public static var cwr: TCPFlags { TCPFlags(rawValue: 0x80) }
}

/// The TCP fields connection tracking reads, from a validated `TransportHeader`.
public struct TCPSegment {
    public let header: TransportHeader
    /// Payload bytes on the wire (from the IP total length, so valid for truncated captures).
    public let payloadLength: Int

    public init(header: TransportHeader, ip: IPv4Packet) {
        precondition(header.protocolNumber == IPProtocol.tcp)
        self.header = header
        payloadLength = ip.payloadLength - dataOffset(header)
    }

    public var sequenceNumber: UInt32 { header.frame.u32(header.offset + 4) }
    public var acknowledgementNumber: UInt32 { header.frame.u32(header.offset + 8) }
    public var flags: TCPFlags { TCPFlags(rawValue: header.frame.u8(header.offset + 13)) }
    public var window: UInt16 { header.frame.u16(header.offset + 14) }
    /// Header length in bytes, options included.
    public var headerLength: Int { dataOffset(header) }
}

private func dataOffset(_ header: TransportHeader) -> Int {
    Int(header.frame.u8(header.offset + 12) >> 4) * 4
}

/// ICMPv4 message view: type, code and checksum.
public struct ICMPv4Message {
    public let frame: UnsafeMutableRawBufferPointer
    public let offset: Int

    public init(ip: IPv4Packet) throws(WireError) {
        guard ip.payloadLength >= 8, ip.frame.count >= ip.payloadOffset + 8 else { throw .truncatedICMPHeader }
        frame = ip.frame
        offset = ip.payloadOffset
    }

    public var type: UInt8 { frame.u8(offset) }
    public var code: UInt8 { frame.u8(offset + 1) }
    public var checksum: UInt16 { frame.u16(offset + 2) }

    /// Sets type and code, updating the checksum incrementally (an echo request becomes its reply).
    public func setTypeAndCode(type: UInt8, code: UInt8) {
        let old = frame.u16(offset)
        let new = UInt16(type) << 8 | UInt16(code)
        frame.setU16(offset, new)
        frame.setU16(offset + 2, InternetChecksum.update(checksum, old: old, new: new))
    }

    public static let echoReply: UInt8 = 0
    public static let echoRequest: UInt8 = 8
}
