/// The Internet checksum: full computation (RFC 1071) and incremental update (RFC 1624, eqn. 3),
/// as the kernel's `csum_replace2` / `csum_replace4` apply it when NAT changes a header.
public enum InternetChecksum {
    /// One's-complement sum of `bytes` as big-endian 16-bit words (odd tail padded with zero),
    /// added to `initial`; not folded, not complemented.
    public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt64 = 0) -> UInt64 {
        var total = initial
        var index = 0
        let count = bytes.count
        while index + 1 < count {
            total &+= UInt64(bytes[index]) << 8 | UInt64(bytes[index + 1])
            index += 2
        }
        if index < count { total &+= UInt64(bytes[index]) << 8 }
        return total
    }

    /// Folds a wide one's-complement sum into 16 bits (end-around carry).
    public static func fold(_ wide: UInt64) -> UInt16 {
        var value = wide
        while value >> 16 != 0 { value = (value & 0xFFFF) + (value >> 16) }
        return UInt16(value)
    }

    /// The checksum field value for data whose sum (including any pseudo-header) is `wide`.
    public static func finish(_ wide: UInt64) -> UInt16 { ~fold(wide) }

    /// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word changing from `old` to `new`.
    /// A checksum that was wrong stays wrong by the same amount.
    @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        apply(difference(old: old, new: new), to: checksum)
    }

    /// RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address), as two 16-bit words.
    @inline(__always)
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        apply(difference(old: old, new: new), to: checksum)
    }

    /// What a 16-bit field changing from `old` to `new` adds to the sums in eqn. 3 (~m + m'), not folded: the
    /// differences of several fields add up, to be applied to a checksum at once.
    @inline(__always)
    public static func difference(old: UInt16, new: UInt16) -> UInt64 { UInt64(~old) + UInt64(new) }

    /// The same for a 32-bit field, as two 16-bit words.
    @inline(__always)
    public static func difference(old: UInt32, new: UInt32) -> UInt64 {
        UInt64(~UInt16(old >> 16)) + UInt64(~UInt16(truncatingIfNeeded: old)) + UInt64(new >> 16)
            + UInt64(new & 0xFFFF)
    }

    /// Eqn. 3 with the summed differences of the fields that changed: ~(~HC + the differences).
    @inline(__always)
    public static func apply(_ difference: UInt64, to checksum: UInt16) -> UInt16 {
        ~fold(UInt64(~checksum) + difference)
    }

    /// Sum of the IPv4 TCP/UDP pseudo-header (source, destination, protocol, L4 length).
    public static func pseudoHeaderSum(source: UInt32, destination: UInt32, protocol proto: UInt8, length: Int)
        -> UInt64
    {
        UInt64(source >> 16) + UInt64(source & 0xFFFF) + UInt64(destination >> 16) + UInt64(destination & 0xFFFF)
            + UInt64(proto) + UInt64(length)
    }
}
