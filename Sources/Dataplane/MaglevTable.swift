import Cluster

/// A Maglev lookup table (Eisenbud et al., NSDI 2016) built as Cilium builds it (pkg/maglev): every backend is
/// named `[ip:port/PROTO,State:active]`, the names are sorted, each backend's preference list is
/// `offset + j * skip (mod M)` with offset and skip from the two halves of MurmurHash3_x64_128 of its name
/// (seeded with Cilium's default Maglev seed), and the backends take turns claiming their next free slot,
/// a backend of weight w taking turns in proportion to w. Removing one of N backends moves about 1/N of the
/// slots, and each backend holds about M/N of them.
public struct MaglevTable: Sendable {
    /// Cilium's default table size (`--bpf-lb-maglev-table-size`), a prime.
    public static let defaultSize = 16381
    /// The first four bytes of Cilium's default `--bpf-lb-maglev-hash-seed` ("JLfvgnHc2kaSUFaI").
    static let ciliumSeed: UInt32 = 0x24B7_EF82
    /// Cilium's default backend weight.
    public static let defaultWeight = 100

    /// Slot to backend, as an index into the list the table was built from.
    let slots: [UInt16]

    /// The table for `backends` (endpoints of one Service port of protocol `serviceProtocol`), with their weights
    /// (Cilium's default 100 each when nil). `size` must be a prime; with no backends the table is empty.
    public init(backends: [Backend], serviceProtocol: ServiceProtocol, weights: [Int]? = nil,
                size: Int = MaglevTable.defaultSize)
    {
        precondition(backends.count <= Int(UInt16.max), "a Maglev table holds at most 65535 backends")
        guard !backends.isEmpty else {
            slots = []
            return
        }
        let names = backends.map { "[\($0.address):\($0.port)/\(serviceProtocol.rawValue),State:active]" }
        let order = names.indices.sorted { Array(names[$0].utf8).lexicographicallyPrecedes(Array(names[$1].utf8)) }
        let weights = order.map { weights?[$0] ?? Self.defaultWeight }
        let m = UInt64(size)
        let preferences = order.map { index in
            let (h1, h2) = Murmur3.hash128(Array(names[index].utf8), seed: Self.ciliumSeed)
            return (offset: h1 % m, skip: h2 % (m - 1) + 1)
        }
        let count = order.count
        let weightSum = weights.reduce(0, +)
        let weightsUsed = weightSum / count > 1
        var turnCounter = weights.map { Double($0) / Double(count) }
        var next = [UInt64](repeating: 0, count: count)
        var table = [UInt16](repeating: .max, count: size)
        var claimed = [Bool](repeating: false, count: size)
        for n in 0..<size {
            var turn = n % count
            if weightsUsed {
                // A backend passes its turn while its share so far is ahead of its weight.
                while UInt64(n + 1) * UInt64(weights[turn]) < UInt64(turnCounter[turn]) { turn = (turn + 1) % count }
                turnCounter[turn] += Double(weightSum)
            }
            var slot = Int((preferences[turn].offset + next[turn] * preferences[turn].skip) % m)
            while claimed[slot] {
                next[turn] += 1
                slot = Int((preferences[turn].offset + next[turn] * preferences[turn].skip) % m)
            }
            claimed[slot] = true
            table[slot] = UInt16(order[turn])
            next[turn] += 1
        }
        slots = table
    }

    /// Whether `number` is a prime (a table size must be one for the preference lists to be permutations).
    public static func isPrime(_ number: Int) -> Bool {
        guard number >= 2 else { return false }
        var divisor = 2
        while divisor * divisor <= number {
            if number % divisor == 0 { return false }
            divisor += 1
        }
        return true
    }

    /// The backend (index into the list the table was built from) of a flow hash.
    public func backend(forHash hash: UInt64) -> Int { Int(slots[Int(hash % UInt64(slots.count))]) }
}
