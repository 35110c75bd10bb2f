/// Finds the elements of a JSON `List` object's `items` array (the form of `kubectl get -o json` and of a
/// `kubectl get -o yaml` document), so that a list of thousands of objects decodes on every core.
///
/// It reads only the structure (strings with their escapes, brackets and braces, commas): the pieces it
/// finds, the object without its items and the items themselves, are then each decoded by `JSONDecoder`, which
/// checks everything else, and they put together are exactly the text.
struct JSONListItems {
    /// The byte ranges of the `items` array's elements, in order.
    let elements: [Range<Int>]
    /// What is inside the array's brackets: the object without it is `text[..<inside.lowerBound]` followed by
    /// `text[inside.upperBound...]`.
    let inside: Range<Int>

    /// The items of the object `text` (leading and trailing white space allowed), if it has an `items` array.
    init?(_ text: UnsafeRawBufferPointer) {
        var scanner = Scanner(text: text)
        scanner.skipSpace()
        guard scanner.take(UInt8(ascii: "{")) else { return nil }
        // Walk the top object's members to the one named "items".
        while true {
            scanner.skipSpace()
            guard let key = scanner.string() else { return nil }
            scanner.skipSpace()
            guard scanner.take(UInt8(ascii: ":")) else { return nil }
            scanner.skipSpace()
            if text[key].elementsEqual("\"items\"".utf8), scanner.take(UInt8(ascii: "[")) { break }
            guard scanner.skipValue() else { return nil }
            scanner.skipSpace()
            guard scanner.take(UInt8(ascii: ",")) else { return nil }
        }
        let start = scanner.position
        var elements: [Range<Int>] = []
        scanner.skipSpace()
        if !scanner.take(UInt8(ascii: "]")) {
            while true {
                scanner.skipSpace()
                let element = scanner.position
                guard scanner.skipValue() else { return nil }
                elements.append(element..<scanner.position)
                scanner.skipSpace()
                if scanner.take(UInt8(ascii: "]")) { break }
                guard scanner.take(UInt8(ascii: ",")) else { return nil }
            }
        }
        self.elements = elements
        inside = start..<scanner.position - 1
    }

    /// A cursor over the text's structure.
    private struct Scanner {
        let text: UnsafeRawBufferPointer
        var position = 0

        mutating func skipSpace() {
            while position < text.count, text[position].isWhiteSpace { position += 1 }
        }

        /// Steps over `byte` if it comes next.
        mutating func take(_ byte: UInt8) -> Bool {
            guard position < text.count, text[position] == byte else { return false }
            position += 1
            return true
        }

        /// Steps over a string, returning its range with the quotes.
        mutating func string() -> Range<Int>? {
            let start = position
            guard take(UInt8(ascii: "\"")) else { return nil }
            while position < text.count {
                switch text[position] {
                case UInt8(ascii: "\\"): position += 2
                case UInt8(ascii: "\""):
                    position += 1
                    return start..<position
                default: position += 1
                }
            }
            return nil
        }

        /// Steps over one value: a string, or anything up to the `,`, `]` or `}` that ends it at its depth.
        mutating func skipValue() -> Bool {
            var depth = 0
            while position < text.count {
                switch text[position] {
                case UInt8(ascii: "\""):
                    guard string() != nil else { return false }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 { return true }
                    depth -= 1
                case UInt8(ascii: ","):
                    if depth == 0 { return true }
                default:
                    break
                }
                position += 1
            }
            return depth == 0
        }
    }
}

extension UInt8 {
    /// A space, tab, line feed or carriage return: white space in JSON, and after YAML's `---`.
    var isWhiteSpace: Bool { self == 32 || self == 9 || self == 10 || self == 13 }
}
