/// The datagram an ICMP error quotes (destination unreachable, source quench, time exceeded, parameter
/// problem): its IPv4 header and at least the first 8 bytes of its TCP or UDP header, the part with the ports.
/// Rewriting it keeps three checksums right: the quoted IP header's, the quoted TCP/UDP checksum when it was
/// quoted (always for UDP; for TCP only when the whole 20-byte header is there, as the kernel does), and the
/// ICMP checksum around it, each updated incrementally.
public struct QuotedDatagram {
    public let frame: UnsafeMutableRawBufferPointer
    /// Offset of the ICMP header that quotes the datagram.
    public let icmpOffset: Int
    /// Offset of the quoted IPv4 header.
    public let offset: Int
    /// Offset of the quoted TCP/UDP header.
    public let transportOffset: Int
    /// `IPProtocol.tcp` or `IPProtocol.udp`.
    public let protocolNumber: UInt8
    /// Whether the quoted TCP/UDP checksum field is present and in use.
    private let transportChecksumOffset: Int?

    /// ICMP types that quote a datagram and that conntrack relates to a connection.
    public static func isError(type: UInt8) -> Bool { type == 3 || type == 4 || type == 11 || type == 12 }

    /// Validates the datagram quoted by the ICMP error `icmp`; throws for other messages and for quotes too short
    /// to hold the ports.
    public init(icmp: ICMPv4Message) throws(WireError) {
        let frame = icmp.frame
        let offset = icmp.offset + 8
        guard Self.isError(type: icmp.type), frame.count >= offset + 20, frame.u8(offset) >> 4 == 4 else {
            throw .truncatedICMPHeader
        }
        let headerLength = Int(frame.u8(offset) & 0x0F) * 4
        let protocolNumber = frame.u8(offset + 9)
        guard headerLength >= 20, frame.count >= offset + headerLength + 8, frame.u16(offset + 6) & 0x1FFF == 0,
              protocolNumber == IPProtocol.tcp || protocolNumber == IPProtocol.udp else { throw .truncatedICMPHeader }
        self.frame = frame
        icmpOffset = icmp.offset
        self.offset = offset
        transportOffset = offset + headerLength
        self.protocolNumber = protocolNumber
        if protocolNumber == IPProtocol.udp {
            transportChecksumOffset = frame.u16(transportOffset + 6) == 0 ? nil : transportOffset + 6
        } else {
            transportChecksumOffset = frame.count >= transportOffset + 20 ? transportOffset + 16 : nil
        }
    }

    public var source: IPv4Address { IPv4Address(frame.u32(offset + 12)) }
    public var destination: IPv4Address { IPv4Address(frame.u32(offset + 16)) }
    public var sourcePort: UInt16 { frame.u16(transportOffset) }
    public var destinationPort: UInt16 { frame.u16(transportOffset + 2) }

    /// The quoted datagram's 5-tuple.
    public var flow: FlowKey {
        FlowKey(source: source, destination: destination, sourcePort: sourcePort, destinationPort: destinationPort,
                protocolNumber: protocolNumber)
    }

    /// Rewrites the quoted source address and port.
    public func setSource(_ address: IPv4Address, port: UInt16) {
        replaceAddress(at: offset + 12, with: address)
        replacePort(at: transportOffset, with: port)
    }

    /// Rewrites the quoted destination address and port.
    public func setDestination(_ address: IPv4Address, port: UInt16) {
        replaceAddress(at: offset + 16, with: address)
        replacePort(at: transportOffset + 2, with: port)
    }

    private func replaceAddress(at field: Int, with address: IPv4Address) {
        let old = frame.u32(field)
        guard old != address.value else { return }
        patch(field, UInt16(truncatingIfNeeded: address.value >> 16))
        patch(field + 2, UInt16(truncatingIfNeeded: address.value))
        patch(offset + 10, InternetChecksum.update(frame.u16(offset + 10), old: old, new: address.value))
        if let transportChecksumOffset {
            patchTransportChecksum(at: transportChecksumOffset,
                                   InternetChecksum.update(frame.u16(transportChecksumOffset), old: old,
                                                           new: address.value))
        }
    }

    private func replacePort(at field: Int, with port: UInt16) {
        let old = frame.u16(field)
        guard old != port else { return }
        patch(field, port)
        if let transportChecksumOffset {
            patchTransportChecksum(at: transportChecksumOffset,
                                   InternetChecksum.update(frame.u16(transportChecksumOffset), old: old, new: port))
        }
    }

    /// A UDP checksum that comes out 0 is sent as 0xFFFF (RFC 768).
    private func patchTransportChecksum(at field: Int, _ value: UInt16) {
        patch(field, protocolNumber == IPProtocol.udp && value == 0 ? 0xFFFF : value)
    }

    /// Writes a 16-bit word inside the ICMP message and updates the ICMP checksum for it (every field rewritten
    /// here sits at an even distance from the ICMP header).
    private func patch(_ field: Int, _ value: UInt16) {
        let old = frame.u16(field)
        frame.setU16(field, value)
        frame.setU16(icmpOffset + 2, InternetChecksum.update(frame.u16(icmpOffset + 2), old: old, new: value))
    }
}
