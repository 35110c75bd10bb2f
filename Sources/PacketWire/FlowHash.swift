/// A keyed 64-bit hash of a 5-tuple that is the same in every process and on every machine
/// (Swift's `Hasher` is randomly seeded per process, so it cannot drive reproducible choices).
/// Mixing is the splitmix64 finalizer over the packed tuple words.
public enum FlowHash {
    public static func hash(_ key: FlowKey, seed: UInt64, salt: UInt64 = 0) -> UInt64 {
        var state = mix(seed ^ 0x9E37_79B9_7F4A_7C15)
        state = mix(state ^ (UInt64(key.source.value) << 32 | UInt64(key.destination.value)))
        state = mix(state ^ (UInt64(key.sourcePort) << 24 | UInt64(key.destinationPort) << 8
                | UInt64(key.protocolNumber)))
        return mix(state ^ salt)
    }

    /// A cheaper hash of a 5-tuple, for where it lies in a hash table: two mixing rounds over the tuple's two
    /// words, no seed. Spread is all a table needs; no choice depends on the value. (Inlined: conntrack hashes
    /// every packet's tuple.)
    @inlinable @inline(__always)
    public static func bucketHash(_ key: FlowKey) -> UInt64 {
        mix(mix(UInt64(key.source.value) << 32 | UInt64(key.destination.value))
            ^ (UInt64(key.sourcePort) << 24 | UInt64(key.destinationPort) << 8 | UInt64(key.protocolNumber)))
    }

    /// A hash of one address (the same in every process).
    @inlinable @inline(__always)
    public static func hash(_ address: IPv4Address) -> UInt64 {
        mix(UInt64(address.value) ^ 0xD6E8_FEB8_6659_FD93)
    }

    /// A hash of one address and port. (Inlined, as the one-address hash: the sharding keys every frame's client
    /// with it.)
    @inlinable @inline(__always)
    public static func hash(_ address: IPv4Address, port: UInt16) -> UInt64 {
        mix(hash(address) ^ UInt64(port))
    }

    /// Maps a hash uniformly onto 0..<count (multiply-shift, no modulo bias worth measuring).
    public static func index(_ hash: UInt64, count: Int) -> Int {
        Int(hash.multipliedFullWidth(by: UInt64(count)).high)
    }

    /// The hash of a one-word key in a `Dictionary` or `Set` of hash seed `seed`, for the key type's
    /// `_rawHashValue(seed:)` (the standard library's hook for a key hashed in one step): a `mix` of both, a
    /// fraction of the cost of the `Hasher` (SipHash) it replaces, on lookups made for every packet.
    public static func tableHash(_ word: UInt64, seed: Int) -> Int {
        Int(truncatingIfNeeded: mix(word ^ UInt64(truncatingIfNeeded: seed)))
    }

    @usableFromInline @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }
}
