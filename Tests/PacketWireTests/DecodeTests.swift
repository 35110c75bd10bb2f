import PacketWire
import TestSupport
import Testing

@Suite("Frame decoding")
struct DecodeTests {
    let builder = PacketBuilder(source: "10.0.1.2", destination: "10.96.148.206", sourcePort: 55434,
                                destinationPort: 80)

    @Test("Ethernet, one and two VLAN tags")
    func ethernetAndVLAN() throws {
        for tags in [[], [100], [100, 200]] as [[UInt16]] {
            var tagged = builder
            tagged.vlanTags = tags
            let (header, _) = try withFrame(tagged.ethernetFrame()) { try LinkHeader(frame: $0, linkType: .ethernet) }
            #expect(header.etherType == EtherType.ipv4)
            #expect(header.vlanTags == tags.count)
            #expect(header.networkOffset == 14 + 4 * tags.count)
        }
    }

    @Test("Linux cooked v1 and v2, direction, raw IPv4")
    func otherLinkTypes() throws {
        let (incoming, _) = try withFrame(builder.cookedFrame()) { try LinkHeader(frame: $0, linkType: .linuxCooked) }
        #expect(incoming.networkOffset == 16 && !incoming.isOutgoing && incoming.etherType == EtherType.ipv4)
        let (outgoing, _) = try withFrame(builder.cookedFrame(outgoing: true)) {
            try LinkHeader(frame: $0, linkType: .linuxCooked)
        }
        #expect(outgoing.isOutgoing)
        let v2 = be16(0x0800) + [0, 0] + be32(3) + be16(1) + [4, 6] + [2, 0, 0, 0, 0, 1, 0, 0] + builder.ipPacket()
        let (cooked2, _) = try withFrame(v2) { try LinkHeader(frame: $0, linkType: .linuxCooked2) }
        #expect(cooked2.networkOffset == 20 && cooked2.isOutgoing && cooked2.etherType == EtherType.ipv4)
        let (raw, _) = try withFrame(builder.ipPacket()) { try LinkHeader(frame: $0, linkType: .rawIPv4) }
        #expect(raw.networkOffset == 0 && raw.etherType == EtherType.ipv4)
        #expect(LinkType(dlt: 101) == .rawIPv4 && LinkType(dlt: 276) == .linuxCooked2
            && LinkType(dlt: 105) == .other(105))
    }

    @Test("IPv4 options and TCP options are skipped")
    func options() throws {
        var withOptions = builder
        withOptions.ipOptions = [0x94, 0x04, 0, 0, 1, 1, 1, 0]  // router alert + NOPs + end
        withOptions.tcpOptions = [2, 4, 0x05, 0xB4, 1, 1, 4, 2]  // MSS, NOP, NOP, SACK permitted
        let (ports, _) = try withFrame(withOptions.ipPacket()) { bytes in
            let ip = try IPv4Packet(frame: bytes, offset: 0, wireLength: bytes.count)
            #expect(ip.headerLength == 28)
            let transport = try TransportHeader(ip: ip)
            #expect(TCPSegment(header: transport, ip: ip).headerLength == 28)
            return (transport.sourcePort, transport.destinationPort)
        }
        #expect(ports == (55434, 80))
        // Read unvalidated, where the header length puts them; nil once the frame cannot hold them.
        let packet = withOptions.ipPacket()
        let (quick, _) = withFrame(packet) { IPv4Packet.unvalidatedPorts(in: $0, offset: 0) }
        #expect(quick?.source == 55434 && quick?.destination == 80)
        let (short, _) = withFrame(Array(packet.prefix(28 + 3))) { IPv4Packet.unvalidatedPorts(in: $0, offset: 0) }
        #expect(short == nil)
    }

    @Test("malformed headers are reported, never trapped on")
    func malformed() {
        let packet = builder.ipPacket()
        func ipError(_ bytes: [UInt8], wire: Int? = nil) -> WireError? {
            withFrame(bytes) { frame -> WireError? in
                do throws(WireError) {
                    let ip = try IPv4Packet(frame: frame, offset: 0, wireLength: wire ?? frame.count)
                    _ = try TransportHeader(ip: ip)
                    return nil
                } catch { return error }
            }.0
        }
        #expect(ipError(Array(packet.prefix(19))) == .truncatedIPv4Header)
        var badVersion = packet
        badVersion[0] = 0x65
        #expect(ipError(badVersion) == .badIPv4Version)
        var shortIHL = packet
        shortIHL[0] = 0x44
        #expect(ipError(shortIHL) == .badIPv4HeaderLength)
        var longTotal = packet
        longTotal[3] = 0xFF
        #expect(ipError(longTotal) == .badIPv4TotalLength)
        #expect(ipError(Array(packet.prefix(30)), wire: packet.count) == .truncatedTCPHeader)
        var badOffset = packet
        badOffset[32] = 0x40
        #expect(ipError(badOffset) == .badTCPDataOffset)
        #expect(ipError(packet) == nil)
    }

    @Test("random bytes never trap any decoder")
    func randomBytes() {
        var random = SeededGenerator(seed: 11)
        let linkTypes: [LinkType] = [.ethernet, .rawIPv4, .linuxCooked, .linuxCooked2, .other(999)]
        for _ in 0..<20000 {
            let length = Int.random(in: 0...80, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if length > 14, Bool.random(using: &random) { bytes[12] = 0x08; bytes[13] = 0 ; bytes[14] = 0x45 }
            _ = withFrame(bytes) { frame in
                for linkType in linkTypes {
                    guard let link = try? LinkHeader(frame: frame, linkType: linkType),
                          let ip = try? IPv4Packet(frame: frame, offset: link.networkOffset,
                                                   wireLength: frame.count + Int.random(in: 0...2, using: &random))
                    else { continue }
                    if ip.protocolNumber == IPProtocol.tcp || ip.protocolNumber == IPProtocol.udp,
                       let transport = try? TransportHeader(ip: ip)
                    {
                        _ = FlowKey(ip: ip, transport: transport)
                    }
                    _ = try? ICMPv4Message(ip: ip)
                    _ = try? ARPPacket(frame: frame, offset: link.networkOffset)
                }
            }
        }
    }

    @Test("the quick look for an IPv4 packet agrees with decoding the link header, on random and real frames")
    func quickIPv4Look() {
        var random = SeededGenerator(seed: 12)
        let linkTypes: [LinkType] = [.ethernet, .rawIPv4, .linuxCooked, .linuxCooked2, .other(999)]
        var frames = [builder.ethernetFrame(), builder.cookedFrame(outgoing: true)]
        for _ in 0..<20000 {
            let length = Int.random(in: 0...40, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let typeOffset = [12, 14, 16].randomElement(using: &random)!
            if bytes.count > typeOffset + 1, Bool.random(using: &random) {
                bytes[typeOffset] = 0x08
                bytes[typeOffset + 1] = 0
            }
            frames.append(bytes)
        }
        var quickOnes = 0
        for bytes in frames {
            _ = withFrame(bytes) { frame in
                for linkType in linkTypes {
                    let decoded = (try? LinkHeader(frame: frame, linkType: linkType))
                        .flatMap { $0.etherType == EtherType.ipv4 ? $0 : nil }
                    let quick = LinkHeader.ipv4(in: frame, linkType: linkType)
                    #expect(quick?.offset == decoded?.networkOffset && quick?.isOutgoing == decoded?.isOutgoing)
                    if quick != nil { quickOnes += 1 }
                }
            }
        }
        #expect(quickOnes > 5000)
    }

    @Test("dotted-quad addresses parse strictly")
    func addresses() {
        #expect(IPv4Address("10.96.148.206")?.description == "10.96.148.206")
        #expect(IPv4Address("0.0.0.0")?.value == 0 && IPv4Address("255.255.255.255")?.value == .max)
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "a.b.c.d", "1..2.3", "::1", "1.2.3.4.",
                    ".1.2.3", "1.2.3.1000", "1.2.3.00", "+1.2.3.4", " 1.2.3.4", "1.2.3.4 ", "1.2.3.256", "１.2.3.4"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        // Every value's dotted form parses back to it (a sample of the space).
        var generator = SeededGenerator(seed: 5)
        for _ in 0..<10_000 {
            let value = UInt32.random(in: .min ... .max, using: &generator)
            #expect(IPv4Address(IPv4Address(value).description)?.value == value)
        }
    }

    @Test("a port set holds exactly its ports")
    func portSet() {
        var random = SeededGenerator(seed: 3)
        let ports = Set((0..<2000).map { _ in UInt16(truncatingIfNeeded: random.next()) } + [0, 63, 64, 65535])
        let set = PortSet(ports)
        #expect((0...65535).allSatisfy { set.contains(UInt16($0)) == ports.contains(UInt16($0)) })
    }

    @Test("endpoints as map keys: each finds itself, and their one-step hashes spread over a map's buckets")
    func endpointKeys() {
        // Neighbours in every field: addresses, ports and protocols that differ by one.
        let endpoints = (0..<8).flatMap { address in
            (0..<1024).flatMap { port in
                [6, 17, 132].map {
                    TransportEndpoint(address: IPv4Address(0x0AF4_0100 + UInt32(address)), port: UInt16(9000 + port),
                                      protocolNumber: UInt8($0))
                }
            }
        }
        let values = Dictionary(uniqueKeysWithValues: endpoints.enumerated().map { ($1, $0) })
        #expect(values.count == endpoints.count)
        #expect(endpoints.indices.allSatisfy { values[endpoints[$0]] == $0 })
        #expect(values[TransportEndpoint(address: IPv4Address(0x0AF4_0100), port: 9000, protocolNumber: 1)] == nil)
        // A map takes a hash's low bits as the bucket: in 2^15 buckets, 24,576 keys should fill about 53% of
        // them, as random hashes would (the word itself, whose low byte is the protocol, would fill 384).
        for seed in [0, 1, -1, 0x5EED] {
            let buckets = Set(endpoints.map { $0._rawHashValue(seed: seed) & 0x7FFF })
            #expect(buckets.count > 16_000, "seed \(seed)")
        }
    }

    @Test("tuples that differ in one field spread over a table's buckets as random hashes would")
    func bucketHashSpread() {
        // Clients of one Service: neighbouring addresses and ports, as a capture's connections are.
        let tuples = (0..<16).flatMap { client in
            (0..<4096).map { port in
                FlowKey(source: IPv4Address(0x0A00_0102 + UInt32(client)), destination: IPv4Address("10.96.148.206")!,
                        sourcePort: UInt16(32768 + port), destinationPort: 80, protocolNumber: IPProtocol.tcp)
            }
        }
        // 65,536 tuples in 2^17 buckets: random hashes leave e^-0.5, about 61%, of them empty, and put no more
        // than 8 in one.
        var counts = [Int](repeating: 0, count: 1 << 17)
        for tuple in tuples { counts[FlowHash.index(FlowHash.bucketHash(tuple), count: counts.count)] += 1 }
        let empty = Double(counts.filter { $0 == 0 }.count) / Double(counts.count)
        let fullest = counts.max()!
        #expect(abs(empty - 0.6065) < 0.01, "empty buckets: \(empty)")
        #expect(fullest <= 8, "the fullest bucket holds \(fullest)")
    }
}
