#if canImport(Glibc)
import Foundation
import Glibc
import PacketIO

/// How fast a capture is replayed.
public enum ReplayPace: Sendable, Equatable {
    /// At the recorded gaps between frames, divided by a factor (2.0 is twice as fast); tcpreplay's `--multiplier`.
    case recorded(speed: Double)
    /// At a fixed rate, whatever the timestamps say.
    case packetsPerSecond(Double)
    /// As fast as the device takes them.
    case topSpeed
}

/// A sink that writes each frame into a TAP device at the capture's pace, as tcpreplay does: a frame is sent when
/// the time since the first frame, on the monotonic clock, reaches its offset in the capture (scaled by the speed).
/// Frames recorded out of order (an earlier timestamp than the one before) go out at once.
public final class TapReplaySink: FrameSink {
    public let device: TapDevice
    public let pace: ReplayPace
    public private(set) var framesSent = 0
    public private(set) var bytesSent = 0
    /// Frames the device refused (its interface down or out of buffers).
    public private(set) var refused = 0
    private var firstCaptureTime: Int64?
    private var startTime: Int64 = 0
    private var lastSendTime: Int64 = 0

    public init(device: TapDevice, pace: ReplayPace) {
        self.device = device
        self.pace = pace
    }

    public var destination: String { "tap \(device.name)" }

    /// Seconds from the first frame sent to the last.
    public var elapsedSeconds: Double { Double(lastSendTime - startTime) / 1e9 }

    public func write(_ bytes: UnsafeRawBufferPointer, wireLength: Int, timestamp: Int64) {
        if let first = firstCaptureTime {
            switch pace {
            case .recorded(let speed): wait(until: startTime + Int64(Double(timestamp - first) / speed))
            case .packetsPerSecond(let rate): wait(until: startTime + Int64(Double(framesSent + refused) * 1e9 / rate))
            case .topSpeed: break
            }
        } else {
            firstCaptureTime = timestamp
            startTime = Self.monotonicNow()
        }
        if device.write(bytes) {
            framesSent += 1
            bytesSent += bytes.count
        } else {
            refused += 1
        }
        lastSendTime = Self.monotonicNow()
    }

    public func flush() throws(CaptureError) {}
    public func close() throws(CaptureError) {}

    /// A line for people: what was sent, how fast.
    public var report: String {
        let seconds = elapsedSeconds
        let rate = seconds > 0 ? Double(framesSent) / seconds : 0
        let megabits = seconds > 0 ? Double(bytesSent) * 8 / seconds / 1e6 : 0
        return "replay: \(framesSent) frames, \(bytesSent) bytes to \(device.name) in "
            + String(format: "%.3f s: %.0f frames/s, %.1f Mbit/s", seconds, rate, megabits)
            + "; \(refused) refused\n"
    }

    private static func monotonicNow() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Sleeps until a monotonic time; a signal cuts the sleep short (the run then checks for interruption).
    private func wait(until deadline: Int64) {
        guard deadline > Self.monotonicNow() else { return }
        var time = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        _ = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &time, nil)
    }
}
#endif
