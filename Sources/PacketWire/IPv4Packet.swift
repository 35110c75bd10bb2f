/// IP protocol numbers svcplane handles.
public enum IPProtocol {
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let sctp: UInt8 = 132
}

/// In-place view of an IPv4 header inside a frame. The initializer validates everything the
/// accessors touch, so no accessor can read past the captured bytes.
public struct IPv4Packet {
    public let frame: UnsafeMutableRawBufferPointer
    /// Offset of the IPv4 header in `frame`.
    public let offset: Int
    /// Header length in bytes (IHL x 4), options included.
    public let headerLength: Int
    /// The header's total length field: header plus payload as sent on the wire.
    public let totalLength: Int

    /// Validates the header at `offset`. `wireLength` is the frame's original length, which exceeds
    /// `frame.count` when the capture was cut at the snap length; the header itself must be captured. (Inlined,
    /// as the transport header's: the program decodes every packet.)
    @inlinable @inline(__always)
    public init(frame: UnsafeMutableRawBufferPointer, offset: Int, wireLength: Int) throws(WireError) {
        guard frame.count >= offset + 20 else { throw .truncatedIPv4Header }
        let versionAndLength = frame.u8(offset)
        guard versionAndLength >> 4 == 4 else { throw .badIPv4Version }
        let headerLength = Int(versionAndLength & 0x0F) * 4
        guard headerLength >= 20 else { throw .badIPv4HeaderLength }
        guard frame.count >= offset + headerLength else { throw .truncatedIPv4Header }
        let totalLength = Int(frame.u16(offset + 2))
        guard totalLength >= headerLength, totalLength <= max(wireLength, frame.count) - offset else {
            throw .badIPv4TotalLength
        }
        self.frame = frame
        self.offset = offset
        self.headerLength = headerLength
        self.totalLength = totalLength
    }

    public var typeOfService: UInt8 { frame.u8(offset + 1) }
    public var identification: UInt16 { frame.u16(offset + 4) }
    public var timeToLive: UInt8 { frame.u8(offset + 8) }
    public var protocolNumber: UInt8 { frame.u8(offset + 9) }
    public var headerChecksum: UInt16 { frame.u16(offset + 10) }

    /// Fragment offset in 8-byte units (0 for an unfragmented packet or a first fragment).
    public var fragmentOffset: UInt16 { frame.u16(offset + 6) & 0x1FFF }
    public var moreFragments: Bool { frame.u16(offset + 6) & 0x2000 != 0 }
    /// True for the second and later fragments, which carry no transport header.
    public var isLaterFragment: Bool { fragmentOffset != 0 }

    public var source: IPv4Address {
        get { IPv4Address(frame.u32(offset + 12)) }
        nonmutating set { setAddress(.source, to: newValue, difference: addressDifference(source, newValue)) }
    }

    public var destination: IPv4Address {
        get { IPv4Address(frame.u32(offset + 16)) }
        nonmutating set { setAddress(.destination, to: newValue, difference: addressDifference(destination, newValue)) }
    }

    private func addressDifference(_ old: IPv4Address, _ new: IPv4Address) -> UInt64 {
        InternetChecksum.difference(old: old.value, new: new.value)
    }

    /// Offset of the payload (the transport header) in `frame`.
    public var payloadOffset: Int { offset + headerLength }
    /// Payload length according to the header (may exceed the captured bytes).
    public var payloadLength: Int { totalLength - headerLength }

    /// The ports of the IPv4 packet at `offset` in `frame`, read where its header length puts a transport
    /// header, without validating the packet (for a quick look before, or instead of, decoding it); nil when the
    /// frame is too short to hold them.
    @inlinable @inline(__always)
    public static func unvalidatedPorts(in frame: UnsafeMutableRawBufferPointer, offset: Int)
        -> (source: UInt16, destination: UInt16)?
    {
        guard frame.count > offset else { return nil }
        let portsOffset = unvalidatedPayloadOffset(in: frame, offset: offset)
        guard frame.count >= portsOffset + 4 else { return nil }
        return (frame.u16(portsOffset), frame.u16(portsOffset + 2))
    }

    /// Where the header length of the IPv4 packet at `offset` in `frame` puts its payload, without validating the
    /// packet (the caller has checked that the frame holds its first byte).
    @inlinable
    public static func unvalidatedPayloadOffset(in frame: UnsafeMutableRawBufferPointer, offset: Int) -> Int {
        offset + Int(frame.u8(offset) & 0x0F) * 4
    }

    /// Lowers the TTL by one and updates the header checksum incrementally, as a router forwarding the packet
    /// does (the kernel's `ip_decrease_ttl`). The caller checked that the TTL is above 1.
    public func decrementTimeToLive() {
        let old = frame.u16(offset + 8)
        frame.setU16(offset + 8, old &- 0x0100)
        frame.setU16(offset + 10, InternetChecksum.update(headerChecksum, old: old, new: old &- 0x0100))
    }

    /// Writes the source or destination address and updates the header checksum incrementally with the
    /// change's `difference` (`InternetChecksum.difference` of the old and new address: NAT computes it once for
    /// this checksum and the transport's, whose pseudo-header holds the address too). Inlined into NAT's rewrite,
    /// which changes an address of every packet it translates.
    @inline(__always)
    public func setAddress(_ end: PacketEnd, to address: IPv4Address, difference: UInt64) {
        frame.setU32(offset + (end == .source ? 12 : 16), address.value)
        frame.setU16(offset + 10, InternetChecksum.apply(difference, to: headerChecksum))
    }

    /// Recomputes the header checksum from scratch (for packets svcplane builds itself).
    public func computeHeaderChecksum() {
        frame.setU16(offset + 10, 0)
        let header = UnsafeRawBufferPointer(rebasing: frame[offset..<(offset + headerLength)])
        frame.setU16(offset + 10, InternetChecksum.finish(InternetChecksum.sum(header)))
    }
}
