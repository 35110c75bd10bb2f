import PacketWire

/// The connection table: a bounded set of entries found by either of their tuples, with expiry on the
/// capture clock, incremental garbage collection and the kernel's early drop when full.
public struct ConntrackTable: Sendable {
    /// Maximum number of entries (`nf_conntrack_max`).
    public let capacity: Int
    /// Entries currently stored (some may have expired and not yet been collected).
    public private(set) var count = 0
    /// Entries removed to make room for new ones.
    public private(set) var earlyDrops = 0

    /// Entries by slot (nil for a free slot); reachable from the inlinable subscript.
    @usableFromInline var slots: [ConntrackEntry?]
    private var freeSlots: [Int32]
    /// Tuple to slot; the low bit of the value is the direction.
    private var index: TupleIndex
    private var collectCursor = 0

    /// Entries examined for expiry on every insertion, so expired entries are reclaimed without scans.
    static let collectPerInsert = 4
    /// Slots examined for an early-drop victim when the table is full (the kernel scans a few buckets).
    static let earlyDropRange = 64

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        slots = []
        freeSlots = []
        let reserved = min(capacity, 1 << 16)
        slots.reserveCapacity(reserved)
        index = TupleIndex(minimumCapacity: 2 * reserved)
    }

    /// Finds the live entry a packet tuple belongs to, and the packet's direction. Expired entries are
    /// removed on the way, as the kernel's lookup does.
    public mutating func lookup(_ key: FlowKey, now: Int64) -> (slot: Int, direction: ConntrackDirection)? {
        guard let value = find(key) else { return nil }
        let slot = Int(value >> 1)
        if slots[slot]!.expires <= now {
            remove(slot: slot)
            return nil
        }
        return (slot, value & 1 == 0 ? .original : .reply)
    }

    /// Reads or changes an entry in place. (Inlinable, so that reading a few fields of an entry, as NAT does for
    /// every packet, copies only those.)
    @inlinable
    public subscript(slot: Int) -> ConntrackEntry {
        get { slots[slot]! }
        _modify { yield &slots[slot]! }
    }

    /// Why an entry could not be added.
    public enum InsertFailure: Error, Equatable {
        /// The table is full and no entry could be early-dropped ("table full, dropping packet").
        case full
        /// A tuple is already in use by another live entry (the kernel's insert failure).
        case clash
    }

    /// Applies protocol tracking to an entry at `now` (`segment` for TCP, `chunks` for SCTP, neither for UDP)
    /// and marks the reply as seen afterwards, in the order `nf_conntrack_in` does. (A method of the table, so
    /// that the entry is updated in place: a cross-module `_modify` accessor would allocate its coroutine frame
    /// per packet.)
    public mutating func track(slot: Int, direction: ConntrackDirection, segment: TCPSegmentSummary?,
                               chunks: SCTPChunks? = nil, now: Int64, timeouts: ConntrackTimeouts) -> TrackingOutcome
    {
        let outcome: TrackingOutcome
        if let segment {
            outcome = ConnectionTracker.trackTCP(&slots[slot]!, direction: direction, segment: segment, now: now,
                                                 timeouts: timeouts)
        } else if let chunks {
            outcome = ConnectionTracker.trackSCTP(&slots[slot]!, direction: direction, chunks: chunks, now: now,
                                                  timeouts: timeouts)
        } else {
            ConnectionTracker.trackUDP(&slots[slot]!, now: now, timeouts: timeouts)
            outcome = .accepted
        }
        if direction == .reply, outcome == .accepted || outcome == .ignored { slots[slot]!.seenReply = true }
        return outcome
    }

    /// Whether a tuple belongs to an entry (live or not yet collected), in either direction.
    public func contains(_ key: FlowKey) -> Bool { find(key) != nil }

    private func find(_ key: FlowKey) -> Int32? { index.find(key, entries: slots) }

    /// Adds a connection and returns its slot. `serial` orders the listing (the program gives the number of the
    /// frame that opened the connection, so that the entries of shards merge into one run's order).
    public mutating func insert(original: FlowKey, reply: FlowKey, now: Int64, tag: UInt32, serial: UInt32)
        -> Result<Int, InsertFailure>
    {
        collectExpired(now: now, budget: Self.collectPerInsert)
        if find(original) != nil || find(reply) != nil {
            _ = lookup(original, now: now)
            _ = lookup(reply, now: now)
            if find(original) != nil || find(reply) != nil { return .failure(.clash) }
        }
        if count >= capacity && !earlyDrop(near: original, now: now) { return .failure(.full) }
        let entry = ConntrackEntry(created: now, expires: now, serial: serial, original: original, reply: reply,
                                   tag: tag)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = Int(free)
            slots[slot] = entry
        } else {
            slot = slots.count
            slots.append(entry)
        }
        index.set(original, to: Int32(slot) << 1, entries: slots)
        index.set(reply, to: Int32(slot) << 1 | 1, entries: slots)
        count += 1
        return .success(slot)
    }

    /// Deletes an entry.
    public mutating func remove(slot: Int) {
        guard let entry = slots[slot] else { return }
        index.remove(entry.original, entries: slots)
        index.remove(entry.reply, entries: slots)
        slots[slot] = nil
        freeSlots.append(Int32(slot))
        count -= 1
    }

    /// Live entries at `now` with their slots, in creation order.
    public func liveEntries(at now: Int64) -> [(slot: Int, entry: ConntrackEntry)] {
        slots.indices.compactMap { slot in slots[slot].flatMap { $0.expires > now ? (slot, $0) : nil } }
            .sorted { $0.entry.serial < $1.entry.serial }
    }

    /// Live entries at `now`, in creation order.
    public func entries(at now: Int64) -> [ConntrackEntry] { liveEntries(at: now).map(\.entry) }

    /// How many entries are live at `now` (`count` holds expired ones until they are collected).
    public func liveCount(at now: Int64) -> Int { slots.count { $0.map { $0.expires > now } ?? false } }

    /// Removes expired entries among the next `budget` slots (a bounded step of the kernel's gc worker).
    private mutating func collectExpired(now: Int64, budget: Int) {
        guard !slots.isEmpty else { return }
        for _ in 0..<min(budget, slots.count) {
            collectCursor = collectCursor >= slots.count - 1 ? 0 : collectCursor + 1
            if let entry = slots[collectCursor], entry.expires <= now { remove(slot: collectCursor) }
        }
    }

    /// Frees one slot near the new tuple's hash: an expired entry, else a non-ASSURED one.
    private mutating func earlyDrop(near key: FlowKey, now: Int64) -> Bool {
        let start = FlowHash.index(FlowHash.hash(key, seed: 0), count: slots.count)
        var victim: Int?
        for step in 0..<min(Self.earlyDropRange, slots.count) {
            let slot = (start + step) % slots.count
            guard let entry = slots[slot] else { continue }
            if entry.expires <= now {
                remove(slot: slot)
                return true
            }
            if !entry.assured && victim == nil { victim = slot }
        }
        guard let victim else { return false }
        remove(slot: victim)
        earlyDrops += 1
        return true
    }
}
