/// Link-layer header types svcplane decodes, by their libpcap DLT value.
public enum LinkType: Sendable, Equatable {
    case ethernet
    case rawIPv4
    case linuxCooked
    case linuxCooked2
    case other(Int32)

    /// Maps a libpcap `pcap_datalink` value (DLT_*) to a link type.
    public init(dlt: Int32) {
        switch dlt {
        case 1: self = .ethernet
        case 12, 14, 101, 228: self = .rawIPv4  // DLT_RAW (Linux, BSD), LINKTYPE_RAW, DLT_IPV4
        case 113: self = .linuxCooked
        case 276: self = .linuxCooked2
        default: self = .other(dlt)
        }
    }
}

/// EtherType values svcplane distinguishes.
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let vlan: UInt16 = 0x8100
    public static let qinq: UInt16 = 0x88A8
}

/// Where the network-layer packet starts in a frame, what it is, and whether the capture marked
/// the frame as sent by the capturing host (Linux cooked captures record the direction).
public struct LinkHeader: Equatable, Sendable {
    /// Byte offset of the network-layer header.
    public var networkOffset: Int
    /// EtherType of the network-layer packet after any VLAN tags.
    public var etherType: UInt16
    /// Number of 802.1Q / 802.1ad tags skipped (at most two).
    public var vlanTags: Int
    /// True for frames a cooked capture recorded as outgoing from the capturing host.
    public var isOutgoing: Bool

    /// Decodes the link-layer header of `frame` for `linkType`.
    public init(frame: UnsafeMutableRawBufferPointer, linkType: LinkType) throws(WireError) {
        vlanTags = 0
        isOutgoing = false
        var typeOffset: Int
        switch linkType {
        case .ethernet:
            typeOffset = 12
        case .linuxCooked:
            guard frame.count >= 16 else { throw .truncatedLinkHeader }
            isOutgoing = frame.u16(0) == Self.packetOutgoing
            typeOffset = 14
        case .linuxCooked2:
            guard frame.count >= 20 else { throw .truncatedLinkHeader }
            isOutgoing = UInt16(frame.u8(10)) == Self.packetOutgoing
            etherType = frame.u16(0)
            networkOffset = 20
            try skipVLANTags(frame)
            return
        case .rawIPv4:
            guard frame.count >= 1 else { throw .truncatedLinkHeader }
            etherType = frame.u8(0) >> 4 == 4 ? EtherType.ipv4 : 0
            networkOffset = 0
            return
        case .other:
            throw .unsupportedLinkType
        }
        guard frame.count >= typeOffset + 2 else { throw .truncatedLinkHeader }
        etherType = frame.u16(typeOffset)
        networkOffset = typeOffset + 2
        try skipVLANTags(frame)
    }

    /// Where the IPv4 packet a frame carries starts, and whether the capture marked the frame outgoing; nil for a
    /// frame that carries no IPv4 or whose link header is cut. For the passes over every frame that look at IPv4
    /// alone: an untagged Ethernet frame, the common one, is told from its EtherType without decoding the rest.
    @inlinable
    public static func ipv4(in frame: UnsafeMutableRawBufferPointer, linkType: LinkType)
        -> (offset: Int, isOutgoing: Bool)?
    {
        if case .ethernet = linkType, frame.count >= 14, frame.u16(12) == EtherType.ipv4 { return (14, false) }
        guard let link = try? LinkHeader(frame: frame, linkType: linkType), link.etherType == EtherType.ipv4 else {
            return nil
        }
        return (link.networkOffset, link.isOutgoing)
    }

    /// Linux `PACKET_OUTGOING`, the cooked-capture packet type of frames the host sent.
    public static let packetOutgoing: UInt16 = 4

    private mutating func skipVLANTags(_ frame: UnsafeMutableRawBufferPointer) throws(WireError) {
        while (etherType == EtherType.vlan || etherType == EtherType.qinq) && vlanTags < 2 {
            guard frame.count >= networkOffset + 4 else { throw .truncatedLinkHeader }
            etherType = frame.u16(networkOffset + 2)
            networkOffset += 4
            vlanTags += 1
        }
    }
}

/// Ethernet II header view: destination and source MAC at fixed offsets.
public struct EthernetFrame {
    public let frame: UnsafeMutableRawBufferPointer
    /// Length of an untagged Ethernet II header.
    public static let headerLength = 14

    public init(frame: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard frame.count >= Self.headerLength else { throw .truncatedLinkHeader }
        self.frame = frame
    }

    public var destination: MACAddress {
        get { MACAddress(frame, offset: 0) }
        nonmutating set { newValue.write(to: frame, offset: 0) }
    }

    public var source: MACAddress {
        get { MACAddress(frame, offset: 6) }
        nonmutating set { newValue.write(to: frame, offset: 6) }
    }

    /// Exchanges source and destination MAC, turning a received frame's header into a reply's.
    public func swapAddresses() {
        for index in 0..<6 {
            let byte = frame[index]
            frame[index] = frame[index + 6]
            frame[index + 6] = byte
        }
    }

    /// Writes an untagged header at the start of `frame` (which must hold 14 bytes).
    public static func writeHeader(into frame: UnsafeMutableRawBufferPointer, destination: MACAddress,
                                   source: MACAddress, etherType: UInt16)
    {
        destination.write(to: frame, offset: 0)
        source.write(to: frame, offset: 6)
        frame.setU16(12, etherType)
    }
}

/// ARP packet view (Ethernet/IPv4 ARP only), and the builder of requests and replies.
public struct ARPPacket {
    public static let request: UInt16 = 1
    public static let reply: UInt16 = 2
    /// Bytes of an Ethernet/IPv4 ARP packet.
    public static let length = 28

    public let operation: UInt16
    public let senderMAC: MACAddress
    public let senderIP: IPv4Address
    public let targetIP: IPv4Address

    public init(frame: UnsafeMutableRawBufferPointer, offset: Int) throws(WireError) {
        guard frame.count >= offset + Self.length, frame.u16(offset) == 1, frame.u16(offset + 2) == EtherType.ipv4,
              frame.u8(offset + 4) == 6, frame.u8(offset + 5) == 4 else { throw .malformedARP }
        operation = frame.u16(offset + 6)
        senderMAC = MACAddress(frame, offset: offset + 8)
        senderIP = IPv4Address(frame.u32(offset + 14))
        targetIP = IPv4Address(frame.u32(offset + 24))
    }

    /// Writes a whole Ethernet frame holding an ARP packet into `frame` and returns its length (42 bytes:
    /// a TAP or veth carries frames unpadded). A request goes to the broadcast address with a zero target MAC.
    public static func writeFrame(into frame: UnsafeMutableRawBufferPointer, operation: UInt16,
                                  senderMAC: MACAddress, senderIP: IPv4Address, targetMAC: MACAddress,
                                  targetIP: IPv4Address) -> Int
    {
        let isRequest = operation == request
        EthernetFrame.writeHeader(into: frame, destination: isRequest ? .broadcast : targetMAC, source: senderMAC,
                                  etherType: EtherType.arp)
        let offset = EthernetFrame.headerLength
        frame.setU16(offset, 1)  // hardware type Ethernet
        frame.setU16(offset + 2, EtherType.ipv4)
        frame.setU8(offset + 4, 6)
        frame.setU8(offset + 5, 4)
        frame.setU16(offset + 6, operation)
        senderMAC.write(to: frame, offset: offset + 8)
        frame.setU32(offset + 14, senderIP.value)
        (isRequest ? MACAddress(0) : targetMAC).write(to: frame, offset: offset + 18)
        frame.setU32(offset + 24, targetIP.value)
        return offset + length
    }
}
