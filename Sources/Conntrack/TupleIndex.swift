import PacketWire

/// The conntrack table's index from a tuple to its entry: open addressing with linear probing and
/// backward-shift deletion, 4 bytes a bucket (the entry's slot and direction; the tuple itself is read from the
/// entry), kept at most 70% full. A `Dictionary<FlowKey, Int32>` spends about 80 bytes an entry on its two
/// tuples; this spends about 12.
struct TupleIndex: Sendable {
    /// 0 for an empty bucket, else `(slot << 1 | direction) + 1`.
    private var buckets: [UInt32]
    private var used = 0

    init(minimumCapacity: Int) {
        buckets = [UInt32](repeating: 0, count: Self.bucketCount(for: minimumCapacity))
    }

    /// Buckets for `keys` tuples at most 70% full.
    private static func bucketCount(for keys: Int) -> Int { max(16, keys * 10 / 7 + 1) }

    /// The tuple a stored bucket stands for: the original or reply tuple of its slot's entry.
    @inline(__always)
    private static func tuple(_ bucket: UInt32, in entries: [ConntrackEntry?]) -> FlowKey {
        let value = bucket - 1
        return value & 1 == 0 ? entries[Int(value >> 1)]!.original : entries[Int(value >> 1)]!.reply
    }

    /// The value (`slot << 1 | direction`) stored for `key`, whose entries are `entries`. (The entries are passed
    /// in rather than reached through a closure: a closure over the table would share this index's storage and
    /// make every change copy it.)
    func find(_ key: FlowKey, entries: [ConntrackEntry?]) -> Int32? {
        let position = probe(key, entries: entries)
        return buckets[position] == 0 ? nil : Int32(bitPattern: buckets[position] - 1)
    }

    /// Stores `value` for `key`, replacing the value `key` had.
    mutating func set(_ key: FlowKey, to value: Int32, entries: [ConntrackEntry?]) {
        if (used + 1) * 10 > buckets.count * 7 { grow(entries: entries) }
        let position = probe(key, entries: entries)
        if buckets[position] == 0 { used += 1 }
        buckets[position] = UInt32(bitPattern: value) + 1
    }

    /// Removes `key`, moving later entries of its probe run back so that no lookup passes an empty bucket too
    /// early (backward-shift deletion: no tombstones).
    mutating func remove(_ key: FlowKey, entries: [ConntrackEntry?]) {
        var hole = probe(key, entries: entries)
        guard buckets[hole] != 0 else { return }
        buckets[hole] = 0
        used -= 1
        var next = successor(hole)
        while buckets[next] != 0 {
            let wanted = home(Self.tuple(buckets[next], in: entries))
            // The entry at `next` may fill the hole unless its home lies cyclically in (hole, next].
            let homeAfterHole = hole <= next ? (wanted > hole && wanted <= next) : (wanted > hole || wanted <= next)
            if !homeAfterHole {
                buckets[hole] = buckets[next]
                buckets[next] = 0
                hole = next
            }
            next = successor(next)
        }
    }

    /// The bucket holding `key`, or the empty bucket where its probe run ends.
    @inline(__always)
    private func probe(_ key: FlowKey, entries: [ConntrackEntry?]) -> Int {
        var position = home(key)
        while buckets[position] != 0, Self.tuple(buckets[position], in: entries) != key {
            position = successor(position)
        }
        return position
    }

    @inline(__always)
    private func home(_ key: FlowKey) -> Int {
        FlowHash.index(FlowHash.bucketHash(key), count: buckets.count)
    }

    private func successor(_ position: Int) -> Int { position + 1 == buckets.count ? 0 : position + 1 }

    private mutating func grow(entries: [ConntrackEntry?]) {
        let old = buckets
        buckets = [UInt32](repeating: 0, count: old.count * 2)
        for stored in old where stored != 0 {
            var position = home(Self.tuple(stored, in: entries))
            while buckets[position] != 0 { position = successor(position) }
            buckets[position] = stored
        }
    }
}
