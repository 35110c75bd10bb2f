#if canImport(Glibc)
import Glibc

/// A problem with a TAP device, naming it.
public struct TapError: Error, CustomStringConvertible, Sendable {
    public let device: String
    public let message: String

    public init(device: String, message: String) {
        self.device = device
        self.message = message
    }

    public var description: String { "tap \(device): \(message)" }
}

/// A Linux TAP device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`): every read returns one Ethernet frame the kernel
/// sent out of the interface, every write hands one frame to the kernel as received on it. The descriptor is
/// non-blocking, for an event loop. Attaching to an existing persistent TAP (`ip tuntap add`) works the same;
/// a TAP created here disappears when it is closed.
public final class TapDevice {
    /// From linux/if_tun.h: `TUNSETIFF` is `_IOW('T', 202, int)`.
    private static let setInterface: UInt = 0x4004_54CA
    private static let tapMode: Int16 = 0x0002
    private static let noPacketInformation: Int16 = 0x1000

    public let name: String
    public let descriptor: Int32

    public init(name: String) throws(TapError) {
        guard !name.isEmpty, name.utf8.count < Int(IFNAMSIZ), !name.contains("/") else {
            throw TapError(device: name, message: "not a valid interface name (1 to \(IFNAMSIZ - 1) characters)")
        }
        let descriptor = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw TapError(device: name, message: "cannot open /dev/net/tun: \(systemErrorText())")
        }
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { field in
            field.copyBytes(from: name.utf8)
        }
        request.ifr_ifru.ifru_flags = Self.tapMode | Self.noPacketInformation
        guard ioctl(descriptor, Self.setInterface, &request) == 0 else {
            let text = errno == EBUSY ? "busy (another process has it open)" : systemErrorText()
            Glibc.close(descriptor)
            throw TapError(device: name, message: "cannot attach: \(text)")
        }
        self.name = name
        self.descriptor = descriptor
    }

    deinit { Glibc.close(descriptor) }

    /// Reads one frame into `buffer`: its length, or nil when none is waiting.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TapError) -> Int? {
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            switch errno {
            case EINTR: continue
            case EAGAIN: return nil
            default: throw TapError(device: name, message: "read failed: \(systemErrorText())")
            }
        }
    }

    /// Hands one frame to the kernel. Returns false when it was refused (interface down, no buffer).
    public func write(_ frame: UnsafeRawBufferPointer) -> Bool {
        while true {
            let count = Glibc.write(descriptor, frame.baseAddress, frame.count)
            if count == frame.count { return true }
            if count < 0 && errno == EINTR { continue }
            return false
        }
    }
}
#endif
