/// MurmurHash3_x64_128 with a 32-bit seed (both halves start from it), returning its two 64-bit halves: the
/// hash Cilium's Maglev takes a backend's offset (first half) and skip (second half) from.
enum Murmur3 {
    static func hash128(_ bytes: [UInt8], seed: UInt32) -> (UInt64, UInt64) {
        let c1: UInt64 = 0x87C3_7B91_1142_53D5
        let c2: UInt64 = 0x4CF5_AD43_2745_937F
        var h1 = UInt64(seed)
        var h2 = UInt64(seed)
        func word(_ start: Int, _ count: Int) -> UInt64 {
            (0..<count).reduce(UInt64(0)) { $0 | UInt64(bytes[start + $1]) << (8 * UInt64($1)) }
        }
        let blocks = bytes.count / 16
        for block in 0..<blocks {
            var k1 = word(block * 16, 8)
            var k2 = word(block * 16 + 8, 8)
            k1 = (k1 &* c1).rotatedLeft(31) &* c2
            h1 ^= k1
            h1 = (h1.rotatedLeft(27) &+ h2) &* 5 &+ 0x52DC_E729
            k2 = (k2 &* c2).rotatedLeft(33) &* c1
            h2 ^= k2
            h2 = (h2.rotatedLeft(31) &+ h1) &* 5 &+ 0x3849_5AB5
        }
        let tail = blocks * 16
        let remaining = bytes.count - tail
        if remaining > 8 { h2 ^= ((word(tail + 8, remaining - 8) &* c2).rotatedLeft(33) &* c1) }
        if remaining > 0 { h1 ^= ((word(tail, min(remaining, 8)) &* c1).rotatedLeft(31) &* c2) }
        h1 ^= UInt64(bytes.count)
        h2 ^= UInt64(bytes.count)
        h1 &+= h2
        h2 &+= h1
        h1 = finalMix(h1)
        h2 = finalMix(h2)
        h1 &+= h2
        h2 &+= h1
        return (h1, h2)
    }

    private static func finalMix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        return k ^ (k >> 33)
    }
}

extension UInt64 {
    func rotatedLeft(_ count: UInt64) -> UInt64 { self << count | self >> (64 - count) }
}
