/// An IPv4 address in host byte order, printed and parsed in dotted-quad form.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses strict dotted-quad text ("10.96.0.1"); nil for anything else (leading zeros, octets past 255,
    /// signs, spaces). Reads the UTF-8 bytes once: manifests hold hundreds of thousands of addresses.
    @inlinable public init?(_ text: some StringProtocol) {
        var result: UInt32 = 0
        var parts = 0
        var octet: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                guard digits < 3, !leadingZero else { return nil }
                leadingZero = digits == 0 && byte == UInt8(ascii: "0")
                octet = octet * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
            case UInt8(ascii: "."):
                guard digits > 0, octet <= 255, parts < 3 else { return nil }
                result = result << 8 | octet
                parts += 1
                (octet, digits, leadingZero) = (0, 0, false)
            default:
                return nil
            }
        }
        guard digits > 0, octet <= 255, parts == 3 else { return nil }
        value = result << 8 | octet
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    public static func < (lhs: IPv4Address, rhs: IPv4Address) -> Bool { lhs.value < rhs.value }
}
