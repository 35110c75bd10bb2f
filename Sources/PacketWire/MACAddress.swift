/// A 48-bit Ethernet address, held in the low bits of an integer.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public static let broadcast = MACAddress(0xFFFF_FFFF_FFFF)

    public init(_ value: UInt64) { self.value = value & 0xFFFF_FFFF_FFFF }

    /// Reads six bytes at `offset` (the caller checked the bounds).
    public init(_ frame: UnsafeMutableRawBufferPointer, offset: Int) {
        self.init(UInt64(frame.u16(offset)) << 32 | UInt64(frame.u32(offset + 2)))
    }

    /// Parses `02:00:0a:f4:01:0b`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var value: UInt64 = 0
        for part in parts {
            guard part.count == 2, let byte = UInt8(part, radix: 16) else { return nil }
            value = value << 8 | UInt64(byte)
        }
        self.init(value)
    }

    /// Writes the six bytes at `offset`.
    public func write(to frame: UnsafeMutableRawBufferPointer, offset: Int) {
        frame.setU16(offset, UInt16(truncatingIfNeeded: value >> 32))
        frame.setU32(offset + 2, UInt32(truncatingIfNeeded: value))
    }

    /// Group addresses (broadcast included): the low bit of the first octet is set.
    public var isMulticast: Bool { value >> 40 & 1 == 1 }

    public var description: String {
        (0..<6).map { index in
            let byte = UInt8(truncatingIfNeeded: value >> (40 - 8 * index))
            return byte < 16 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined(separator: ":")
    }
}
