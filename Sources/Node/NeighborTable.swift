import PacketWire

/// The node's ARP cache: the MAC address of each host it reached or heard on a network, and the frames waiting
/// for a host that has not answered yet. Resolution follows the kernel's defaults: a request every second, three
/// in all, then the waiting frames are given up (each answered with ICMP host unreachable by the caller).
struct NeighborTable {
    /// A host on one of the node's networks.
    struct Key: Hashable {
        var interface: Int
        var address: IPv4Address
    }

    /// A frame waiting for its next hop's MAC address, with the interface it came in on.
    struct WaitingFrame {
        var bytes: [UInt8]
        var ingress: Int
    }

    /// A resolution in progress.
    struct Resolution {
        var waiting: [WaitingFrame] = []
        var requestsSent = 0
        var nextRequest: Int64 = 0
    }

    /// Requests sent before giving up (`mcast_solicit`).
    static let requestLimit = 3
    /// Time between two requests (`retrans_time_ms`).
    static let requestInterval: Int64 = 1_000_000_000
    /// Frames kept per unresolved host; more are dropped (the kernel's `unres_qlen`, here in frames).
    static let waitingLimit = 16
    /// Hosts the table learns at most; past it, new hosts are resolved but not remembered.
    static let capacity = 65_536
    /// Resolutions in progress at most.
    static let resolutionLimit = 1_024

    private(set) var known: [Key: MACAddress] = [:]
    private(set) var resolutions: [Key: Resolution] = [:]

    func lookup(_ key: Key) -> MACAddress? { known[key] }

    /// Remembers (or updates) a host's MAC address. Returns the frames that were waiting for it, if any.
    mutating func learn(_ key: Key, mac: MACAddress) -> [WaitingFrame] {
        if known[key] != mac, known[key] != nil || known.count < Self.capacity { known[key] = mac }
        return resolutions.removeValue(forKey: key)?.waiting ?? []
    }

    /// What the caller should do with a frame for an unknown host.
    enum Queued {
        /// Queued, and a resolution started: send the first request now.
        case sendRequest
        /// Queued behind a resolution already in progress.
        case waiting
        /// Not queued: too many frames or resolutions waiting.
        case dropped
    }

    /// Queues a frame for `key` until its MAC is known.
    mutating func enqueue(_ frame: UnsafeRawBufferPointer, ingress: Int, for key: Key, now: Int64) -> Queued {
        let isNew = resolutions[key] == nil
        if isNew && resolutions.count >= Self.resolutionLimit { return .dropped }
        var resolution = resolutions[key] ?? Resolution()
        guard resolution.waiting.count < Self.waitingLimit else { return .dropped }
        resolution.waiting.append(WaitingFrame(bytes: Array(frame), ingress: ingress))
        if isNew {
            resolution.requestsSent = 1
            resolution.nextRequest = now + Self.requestInterval
        }
        resolutions[key] = resolution
        return isNew ? .sendRequest : .waiting
    }

    /// Advances every resolution to `now`: the hosts to ask again, and the frames of hosts that never answered
    /// (their resolutions are over), both in address order.
    mutating func expire(now: Int64) -> (askAgain: [Key], givenUp: [WaitingFrame]) {
        var askAgain: [Key] = []
        var givenUp: [WaitingFrame] = []
        let due = resolutions.filter { $0.value.nextRequest <= now }.keys
            .sorted { ($0.interface, $0.address) < ($1.interface, $1.address) }
        for key in due {
            if resolutions[key]!.requestsSent >= Self.requestLimit {
                givenUp += resolutions.removeValue(forKey: key)!.waiting
            } else {
                resolutions[key]!.requestsSent += 1
                resolutions[key]!.nextRequest = now + Self.requestInterval
                askAgain.append(key)
            }
        }
        return (askAgain, givenUp)
    }
}
