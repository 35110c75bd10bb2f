import Dataplane
import PacketWire

/// Where the node's frames go out: one call per frame, naming the interface by its position.
public protocol FrameTransmitter {
    /// Sends `frame` out of interface `interface`; false when the device refused it.
    mutating func transmit(_ frame: UnsafeRawBufferPointer, on interface: Int) -> Bool
}

/// A node between networks, doing what a Linux node with kube-proxy does to a frame it receives: it answers ARP
/// for its own addresses and ICMP echo to them; runs the Service program (DNAT, conntrack, reverse NAT, REJECT);
/// routes by longest prefix over its networks; decrements the TTL (ICMP time exceeded at 1); resolves the next
/// hop with ARP (queueing meanwhile) and rewrites the MAC addresses. Frames arrive already read; what leaves goes
/// through a `FrameTransmitter`, so the same code runs on TAP devices and in tests.
public final class NodeForwarder {
    public let interfaces: [NodeInterface]
    public private(set) var program: ServiceLoadBalancer
    public private(set) var stats: NodeStats
    private var neighbors = NeighborTable()
    /// Interface positions, longest prefix first: the route lookup order.
    private let routeOrder: [Int]
    /// Room for the frames the node builds (ARP, ICMP) and for the program's replies.
    private let scratch: UnsafeMutableRawBufferPointer
    /// Room for the program's replies while it runs on a frame the node built in `scratch`.
    private let programScratch: UnsafeMutableRawBufferPointer

    public init(interfaces: [NodeInterface], program: ServiceLoadBalancer) {
        precondition(program.linkType == .ethernet, "TAP devices carry Ethernet frames")
        self.interfaces = interfaces
        self.program = program
        stats = NodeStats(interfaces: interfaces.count)
        routeOrder = interfaces.indices.sorted { interfaces[$0].prefixLength > interfaces[$1].prefixLength }
        scratch = .allocate(byteCount: XDPContext.generatedCapacity, alignment: 16)
        programScratch = .allocate(byteCount: XDPContext.generatedCapacity, alignment: 16)
    }

    deinit {
        scratch.deallocate()
        programScratch.deallocate()
    }

    /// Handles one frame read from interface `ingress` at wall-clock time `now` (nanoseconds since the epoch).
    /// The frame is rewritten in place when forwarded.
    public func receive<Transmitter: FrameTransmitter>(_ frame: UnsafeMutableRawBufferPointer, on ingress: Int,
                                                       at now: Int64, via transmitter: inout Transmitter)
    {
        stats.recordReceived(on: ingress)
        guard let ethernet = try? EthernetFrame(frame: frame) else { return stats.record(.malformed) }
        let destinationMAC = ethernet.destination
        guard destinationMAC == interfaces[ingress].mac || destinationMAC.isMulticast else {
            return stats.record(.otherHost)
        }
        switch frame.u16(12) {
        case EtherType.arp: receiveARP(frame, on: ingress, via: &transmitter)
        case EtherType.ipv4: receiveIPv4(frame, ethernet: ethernet, on: ingress, at: now, via: &transmitter)
        default: stats.record(.notIPv4)
        }
    }

    /// Runs the timers: ARP requests asked again, and frames for hosts that never answered given up (each
    /// answered with ICMP host unreachable, as the kernel does). Call it about once a second.
    public func expireResolutions<Transmitter: FrameTransmitter>(at now: Int64, via transmitter: inout Transmitter) {
        let (askAgain, givenUp) = neighbors.expire(now: now)
        for key in askAgain { sendRequest(for: key, via: &transmitter) }
        for waiting in givenUp {
            stats.record(.neighborUnreachable)
            var bytes = waiting.bytes
            bytes.withUnsafeMutableBytes { frame in
                guard let ip = try? IPv4Packet(frame: frame, offset: EthernetFrame.headerLength,
                                               wireLength: frame.count) else { return }
                sendError(.hostUnreachable, about: frame, ip: ip, ingress: waiting.ingress, translatedAt: now,
                          via: &transmitter)
            }
        }
    }

    // MARK: ARP

    private func receiveARP<Transmitter: FrameTransmitter>(_ frame: UnsafeMutableRawBufferPointer, on ingress: Int,
                                                           via transmitter: inout Transmitter)
    {
        guard let arp = try? ARPPacket(frame: frame, offset: EthernetFrame.headerLength) else {
            return stats.record(.malformed)
        }
        let interface = interfaces[ingress]
        learn(arp.senderIP, mac: arp.senderMAC, on: ingress, via: &transmitter)
        guard arp.operation == ARPPacket.request, arp.targetIP == interface.address else { return }
        let length = ARPPacket.writeFrame(into: scratch, operation: ARPPacket.reply, senderMAC: interface.mac,
                                          senderIP: interface.address, targetMAC: arp.senderMAC,
                                          targetIP: arp.senderIP)
        stats.record(.arpReply)
        send(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: ingress, via: &transmitter)
    }

    /// Remembers a host heard on `interface` and sends what was waiting for it.
    private func learn<Transmitter: FrameTransmitter>(_ address: IPv4Address, mac: MACAddress, on interface: Int,
                                                      via transmitter: inout Transmitter)
    {
        guard interfaces[interface].contains(address), address != interfaces[interface].address,
              !mac.isMulticast, mac.value != 0 else { return }
        let key = NeighborTable.Key(interface: interface, address: address)
        if neighbors.lookup(key) == mac { return }
        for waiting in neighbors.learn(key, mac: mac) {
            var bytes = waiting.bytes
            bytes.withUnsafeMutableBytes { frame in transmitForwarded(frame, to: mac, on: interface, via: &transmitter) }
        }
    }

    private func sendRequest<Transmitter: FrameTransmitter>(for key: NeighborTable.Key,
                                                            via transmitter: inout Transmitter)
    {
        let interface = interfaces[key.interface]
        let length = ARPPacket.writeFrame(into: scratch, operation: ARPPacket.request, senderMAC: interface.mac,
                                          senderIP: interface.address, targetMAC: .broadcast,
                                          targetIP: key.address)
        stats.record(.arpRequest)
        send(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: key.interface, via: &transmitter)
    }

    // MARK: IPv4

    private func receiveIPv4<Transmitter: FrameTransmitter>(_ frame: UnsafeMutableRawBufferPointer,
                                                            ethernet: EthernetFrame, on ingress: Int, at now: Int64,
                                                            via transmitter: inout Transmitter)
    {
        guard let ip = try? IPv4Packet(frame: frame, offset: EthernetFrame.headerLength, wireLength: frame.count)
        else { return stats.record(.malformed) }
        learn(ip.source, mac: ethernet.source, on: ingress, via: &transmitter)
        guard !ethernet.destination.isMulticast else { return stats.record(.broadcast) }
        if isNodeAddress(ip.destination) && answerEcho(frame, ethernet: ethernet, ip: ip, on: ingress,
                                                       via: &transmitter)
        {
            return
        }
        let connections = program.stats.newConnections
        var context = XDPContext(data: frame, wireLength: frame.count, timestamp: now, generated: scratch)
        switch program.run(&context) {
        case .drop, .aborted:
            stats.record(.program)
        case .tx:
            stats.record(.reject)
            send(UnsafeRawBufferPointer(rebasing: scratch[0..<context.generatedLength]), on: ingress,
                 via: &transmitter)
        case .pass, .redirect:
            // Still to the node after the program (not a node port): nothing here serves it.
            guard !isNodeAddress(ip.destination) else { return stats.record(.local) }
            guard ip.timeToLive > 1 else {
                return expire(frame, ip: ip, ingress: ingress, opened: program.stats.newConnections > connections,
                              at: now, via: &transmitter)
            }
            forward(frame, ip: ip, from: ingress, at: now, via: &transmitter)
        }
    }

    /// A packet to forward whose TTL runs out, as the kernel handles it: the TTL is checked after DNAT, the ICMP
    /// time exceeded about the translated packet leaves translated back as conntrack's RELATED (so the client
    /// hears from the ClusterIP about the packet it sent), and a connection this packet would have opened is
    /// never confirmed.
    private func expire<Transmitter: FrameTransmitter>(_ frame: UnsafeMutableRawBufferPointer, ip: IPv4Packet,
                                                       ingress: Int, opened: Bool, at now: Int64,
                                                       via transmitter: inout Transmitter)
    {
        sendError(.timeExceeded, about: frame, ip: ip, ingress: ingress, translatedAt: now, via: &transmitter)
        guard opened, let transport = try? TransportHeader(ip: ip) else { return }
        program.removeConnection(replyingTo: FlowKey(ip: ip, transport: transport))
    }

    private func isNodeAddress(_ address: IPv4Address) -> Bool { interfaces.contains { $0.address == address } }

    /// Routes a packet the program let through (rewritten in place) to its next hop.
    private func forward<Transmitter: FrameTransmitter>(_ frame: UnsafeMutableRawBufferPointer, ip: IPv4Packet,
                                                        from ingress: Int, at now: Int64,
                                                        via transmitter: inout Transmitter)
    {
        let destination = ip.destination
        guard let egress = routeOrder.first(where: { interfaces[$0].contains(destination) }) else {
            return stats.record(.unroutable)
        }
        ip.decrementTimeToLive()
        let key = NeighborTable.Key(interface: egress, address: destination)
        if let mac = neighbors.lookup(key) {
            return transmitForwarded(frame, to: mac, on: egress, via: &transmitter)
        }
        switch neighbors.enqueue(UnsafeRawBufferPointer(frame), ingress: ingress, for: key, now: now) {
        case .sendRequest: sendRequest(for: key, via: &transmitter)
        case .waiting: break
        case .dropped: stats.record(.neighborQueueFull)
        }
    }

    private func transmitForwarded<Transmitter: FrameTransmitter>(_ frame: UnsafeMutableRawBufferPointer,
                                                                  to mac: MACAddress, on egress: Int,
                                                                  via transmitter: inout Transmitter)
    {
        let ethernet = try! EthernetFrame(frame: frame)  // a forwarded frame was decoded as Ethernet before
        ethernet.destination = mac
        ethernet.source = interfaces[egress].mac
        stats.recordForwarded()
        send(UnsafeRawBufferPointer(frame), on: egress, via: &transmitter)
    }

    /// Answers an ICMP echo request to one of the node's addresses in place; false for anything else.
    private func answerEcho<Transmitter: FrameTransmitter>(_ frame: UnsafeMutableRawBufferPointer,
                                                           ethernet: EthernetFrame, ip: IPv4Packet, on ingress: Int,
                                                           via transmitter: inout Transmitter) -> Bool
    {
        guard ip.protocolNumber == IPProtocol.icmp, !ip.isLaterFragment, !ip.moreFragments,
              let icmp = try? ICMPv4Message(ip: ip), icmp.type == ICMPv4Message.echoRequest, icmp.code == 0
        else { return false }
        icmp.setTypeAndCode(type: ICMPv4Message.echoReply, code: 0)
        let requester = ip.source
        ip.source = ip.destination
        ip.destination = requester
        frame.setU8(ip.offset + 8, 64)
        ip.computeHeaderChecksum()
        ethernet.destination = ethernet.source
        ethernet.source = interfaces[ingress].mac
        stats.record(.echoReply)
        send(UnsafeRawBufferPointer(rebasing: frame[0..<(ip.offset + ip.totalLength)]), on: ingress,
             via: &transmitter)
        return true
    }

    /// Sends an ICMP error about `frame` back out of the interface it came in on, from the node's address there
    /// (the builder swaps the frame's MAC addresses: the sender's becomes the destination, the node's the source).
    /// With `translatedAt`, the error about a packet the program already translated goes through the program too,
    /// which translates it back as RELATED (as conntrack does for the errors the kernel sends about such packets).
    private func sendError<Transmitter: FrameTransmitter>(_ kind: ICMPErrorReply.Kind,
                                                          about frame: UnsafeMutableRawBufferPointer,
                                                          ip: IPv4Packet, ingress: Int, translatedAt now: Int64? = nil,
                                                          via transmitter: inout Transmitter)
    {
        guard let link = try? LinkHeader(frame: frame, linkType: .ethernet) else { return }
        let length = ICMPErrorReply.write(kind, about: frame, link: link, linkType: .ethernet, ip: ip,
                                          from: interfaces[ingress].address, into: scratch)
        if let now {
            var context = XDPContext(data: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<length]),
                                     wireLength: length, timestamp: now, generated: programScratch)
            _ = program.run(&context)
        }
        stats.record(kind == .timeExceeded ? .timeExceeded : .hostUnreachable)
        send(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: ingress, via: &transmitter)
    }

    private func send<Transmitter: FrameTransmitter>(_ frame: UnsafeRawBufferPointer, on interface: Int,
                                                     via transmitter: inout Transmitter)
    {
        if transmitter.transmit(frame, on: interface) {
            stats.recordSent(on: interface)
        } else {
            stats.record(.transmitFailed)
        }
    }
}
