#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The fast path of `PcapReader`: a classic pcap file in this machine's byte order, read with `pread` in blocks
/// of a megabyte and handed out record by record from the block itself, or read straight into the caller's
/// memory a block of records at a time, so that the caller rewrites each frame in place (no per-record library
/// calls, no per-record copies).
///
/// It takes only records whose reading leaves no room for interpretation (captured length within the snapshot
/// length and the wire length, fraction of a second in range, seconds below 2^31). Anything else (an unusual
/// record, a truncated end, a read error) is answered with `.unusual`, and `PcapReader` lets libpcap read that
/// record, so that every frame is exactly the frame libpcap would return.
struct PcapBlockSource {
    enum Step {
        case frame(CapturedFrame)
        /// libpcap must read the record at this file offset.
        case unusual(offset: Int64)
        case end
    }

    /// libpcap's largest snapshot length for ordinary link types; larger ones are left to libpcap.
    static let maximumSnapLength: Int32 = 262_144
    static let blockLength = 1 << 20

    private let descriptor: Int32
    private let snapLength: UInt32
    private let fractionUnit: Int64
    private let fractionLimit: UInt32
    private let buffer: UnsafeMutableRawBufferPointer
    /// File offset of `buffer[0]`.
    private var bufferOffset = PcapFormat.fileHeaderLength
    /// The unread bytes are `buffer[start..<end]`.
    private var start = 0
    private var end = 0
    private var atEndOfFile = false
    private var readFailed = false

    /// Nil unless the file at `path`, which libpcap has opened as a capture, is a regular file of version 2.4
    /// whose magic number is in this machine's byte order and whose snapshot length is an ordinary one.
    init?(path: String, snapLength: Int32) {
        guard snapLength > 0, snapLength <= Self.maximumSnapLength else { return nil }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        var status = stat()
        var header = (magic: UInt32(0), major: UInt16(0), minor: UInt16(0))
        let headerRead = withUnsafeMutableBytes(of: &header) { pread(descriptor, $0.baseAddress, 8, 0) }
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG, headerRead == 8,
              header.major == 2, header.minor == 4, header.magic == 0xA1B2_C3D4 || header.magic == 0xA1B2_3C4D
        else {
            close(descriptor)
            return nil
        }
        self.descriptor = descriptor
        self.snapLength = UInt32(snapLength)
        let nanoseconds = header.magic == 0xA1B2_3C4D
        fractionUnit = nanoseconds ? 1 : 1000
        fractionLimit = nanoseconds ? 1_000_000_000 : 1_000_000
        buffer = .allocate(byteCount: Self.blockLength + PcapFormat.recordHeaderLength + Int(snapLength), alignment: 16)
    }

    /// Gives back the buffer and the file (the owning reader's deinit).
    func release() {
        buffer.deallocate()
        close(descriptor)
    }

    /// File offset of the next record: how far into the file the caller has read.
    var offset: Int64 { bufferOffset + Int64(start) }

    mutating func next() -> Step {
        if end - start < PcapFormat.recordHeaderLength { refill() }
        if end == start && atEndOfFile && !readFailed { return .end }
        guard end - start >= PcapFormat.recordHeaderLength,
              var header = usualHeader(at: UnsafeRawPointer(buffer.baseAddress! + start))
        else { return .unusual(offset: offset) }
        if end - start < header.length {
            refill()
            guard end - start >= header.length else { return .unusual(offset: offset) }
            header = usualHeader(at: UnsafeRawPointer(buffer.baseAddress! + start))!
        }
        let frame = header.frame(at: buffer.baseAddress! + start)
        start += header.length
        return .frame(frame)
    }

    /// Reads the next records with one `pread` straight into `buffer` from its byte `first` (a batch's memory),
    /// in the file's layout: each frame after its 16-byte record header. Gives the place of each whole, usual
    /// record's frame in `places`, until they are full; returns the bytes of `buffer` the records placed fill,
    /// and how many they are. Returns (0, 0), leaving the record to `next()`, while bytes read by `next()` are
    /// unread, at the end of the file, on a read error, when `places` has no room, and when the first record is
    /// unusual or larger than the room in `buffer`.
    mutating func readRecords(into buffer: UnsafeMutableRawBufferPointer, from first: Int,
                              places: UnsafeMutableBufferPointer<FramePlace>) -> (byteCount: Int, frameCount: Int)
    {
        guard start == end, !atEndOfFile, !places.isEmpty, let base = buffer.baseAddress.map({ $0 + first })
        else { return (0, 0) }
        let fileOffset = offset
        var count: Int
        repeat {
            count = pread(descriptor, base, buffer.count - first, off_t(fileOffset))
        } while count < 0 && errno == EINTR
        var position = 0
        var placed = 0
        while placed < places.count, count - position >= PcapFormat.recordHeaderLength,
              let header = usualHeader(at: UnsafeRawPointer(base + position)), count - position >= header.length
        {
            places[placed] = FramePlace(offset: first + position + PcapFormat.recordHeaderLength,
                                        length: header.captured, wireLength: header.wire,
                                        timestamp: header.timestamp, hasRecordHeader: true)
            placed += 1
            position += header.length
        }
        bufferOffset = fileOffset + Int64(position)
        start = 0
        end = 0
        return (position, placed)
    }

    /// A record header's fields, once found usual.
    private struct RecordHeader {
        let captured: Int
        let wire: Int
        let timestamp: Int64
        var length: Int { PcapFormat.recordHeaderLength + captured }

        /// The frame of the record at `record`.
        func frame(at record: UnsafeMutableRawPointer) -> CapturedFrame {
            CapturedFrame(bytes: UnsafeMutableRawBufferPointer(start: record + PcapFormat.recordHeaderLength,
                                                               count: captured),
                          wireLength: wire, timestamp: timestamp)
        }
    }

    /// The header at `record` when libpcap would return its record as it is: nil for an unusual one.
    private func usualHeader(at record: UnsafeRawPointer) -> RecordHeader? {
        let seconds = record.loadUnaligned(fromByteOffset: 0, as: UInt32.self)
        let fraction = record.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        let captured = record.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let wire = record.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        guard seconds < 1 << 31, fraction < fractionLimit, captured <= snapLength, captured <= wire else { return nil }
        return RecordHeader(captured: Int(captured), wire: Int(wire),
                            timestamp: Int64(seconds) * 1_000_000_000 + Int64(fraction) * fractionUnit)
    }

    /// Continues after a record libpcap read: the next record starts at `offset`.
    mutating func resume(at offset: Int64) {
        bufferOffset = offset
        start = 0
        end = 0
        atEndOfFile = false
        readFailed = false
    }

    /// Moves the unread bytes to the front and reads up to a block after them.
    private mutating func refill() {
        guard !atEndOfFile else { return }
        let unread = end - start
        if start > 0 {
            buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: unread)
            bufferOffset += Int64(start)
            start = 0
            end = unread
        }
        while end < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + end, buffer.count - end,
                              off_t(bufferOffset) + off_t(end))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                atEndOfFile = true
                readFailed = count < 0  // libpcap reads the record and reports the error
                return
            }
            end += count
            if end - unread >= Self.blockLength { return }
        }
    }
}
