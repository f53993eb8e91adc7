import XCTest
@testable import Deck

/// The TOML subset: every construct decks use, with values and lines checked,
/// and the malformed documents the parser must refuse (with their line).
final class TOMLParserTests: XCTestCase {
    private func parse(_ text: String) throws -> TOMLTable {
        try TOMLParser.parse(text, file: "t.toml")
    }

    private func node(_ root: TOMLTable, _ path: String) -> TOMLNode? {
        var table = root
        let parts = path.split(separator: ".").map(String.init)
        for part in parts.dropLast() {
            guard let n = table[part], case .table(let t) = n.value else { return nil }
            table = t
        }
        return parts.last.flatMap { table[$0] }
    }

    private func string(_ root: TOMLTable, _ path: String) -> String? {
        if case .string(let s)? = node(root, path)?.value { return s }
        return nil
    }

    private func assertRejects(_ text: String, line: Int, _ fragment: String, file: StaticString = #filePath, lineNumber: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: lineNumber) { e in
            guard let error = e as? DeckError else { return XCTFail("not a DeckError: \(e)", file: file, line: lineNumber) }
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: lineNumber)
            XCTAssertTrue(error.message.contains(fragment), "\(error)", file: file, line: lineNumber)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: lineNumber)
        }
    }

    func testStringsWithEscapes() throws {
        let root = try parse(#"""
        basic = "tab\there \"quoted\" back\\slash \u00E9 \U0001F600 nl\n"
        literal = 'C:\path\no\escapes'
        multi = """
        first
          second \
             joined"""
        multiLiteral = '''
        raw \n "text"'''
        quotes = """a ""quoted"" word"""""
        "quoted key" = 1
        'literal key' = 2
        """#)
        XCTAssertEqual(string(root, "basic"), "tab\there \"quoted\" back\\slash é 😀 nl\n")
        XCTAssertEqual(string(root, "literal"), #"C:\path\no\escapes"#)
        XCTAssertEqual(string(root, "multi"), "first\n  second joined")
        XCTAssertEqual(string(root, "multiLiteral"), #"raw \n "text""#)
        XCTAssertEqual(string(root, "quotes"), #"a ""quoted"" word"""#)
        XCTAssertNotNil(root["quoted key"])
        XCTAssertNotNil(root["literal key"])
        XCTAssertEqual(root.keys, ["basic", "literal", "multi", "multiLiteral", "quotes", "quoted key", "literal key"])
        XCTAssertEqual(root["multiLiteral"]?.line, 7)
        XCTAssertEqual(root["quotes"]?.line, 9)
    }

    func testNumbersAndBooleans() throws {
        let root = try parse("""
        a = 1_000_000
        b = -17
        c = 0xDEAD_beef
        d = 0o755
        e = 0b1101
        f = 6.626e-34
        g = -1_0.5E+2
        h = inf
        i = -nan
        j = true
        k = false
        l = +0.0
        """)
        func v(_ k: String) -> TOMLValue? { root[k]?.value }
        guard case .integer(1_000_000)? = v("a"), case .integer(-17)? = v("b"), case .integer(0xDEADBEEF)? = v("c"),
              case .integer(0o755)? = v("d"), case .integer(13)? = v("e"), case .float(let f)? = v("f"),
              case .float(let g)? = v("g"), case .float(let h)? = v("h"), case .float(let i)? = v("i"),
              case .boolean(true)? = v("j"), case .boolean(false)? = v("k"), case .float(0)? = v("l")
        else { return XCTFail("wrong values: \(root.keys.map { root[$0]?.value.rendered ?? "" })") }
        XCTAssertEqual(f, 6.626e-34)
        XCTAssertEqual(g, -1050)
        XCTAssertEqual(h, .infinity)
        XCTAssertTrue(i.isNaN)
        XCTAssertEqual(root["l"]?.line, 12)
    }

    func testArraysMultiLineNestedAndMixed() throws {
        let root = try parse("""
        flat = [1, 2, 3]
        nested = [
          [0, 1, 2.5],   # a comment inside
          [2, 3, 2.5,],
        ]
        mixed = ["a", 1, [true]]
        empty = []
        """)
        guard case .array(let nested)? = root["nested"]?.value, nested.count == 2,
              case .array(let second) = nested[1].value, second.count == 3 else { return XCTFail("nested array") }
        XCTAssertEqual(nested[1].line, 4)
        XCTAssertEqual(second[2].line, 4)
        guard case .array(let mixed)? = root["mixed"]?.value, case .array(let inner) = mixed[2].value,
              case .boolean(true) = inner[0].value else { return XCTFail("mixed array") }
        guard case .array(let empty)? = root["empty"]?.value else { return XCTFail("empty array") }
        XCTAssertTrue(empty.isEmpty)
    }

    func testTablesDottedKeysInlineTablesAndArraysOfTables() throws {
        let root = try parse("""
        top.level.key = "x"
        [a.b]
        c = 1
        d.e = 2
        [a]                 # defining a parent after its child is allowed
        f = { g = 3, h.i = "j" }
        [[list]]
        n = 1
        [[list]]
        n = 2
        [list.sub]
        m = 3
        """)
        XCTAssertEqual(string(root, "top.level.key"), "x")
        guard case .integer(2)? = node(root, "a.b.d.e")?.value else { return XCTFail("dotted key in table") }
        XCTAssertEqual(string(root, "a.f.h.i"), "j")
        guard case .array(let list)? = root["list"]?.value, list.count == 2,
              case .table(let second) = list[1].value else { return XCTFail("array of tables") }
        XCTAssertEqual(second.line, 9)
        guard case .integer(3)? = node(second, "sub.m")?.value else { return XCTFail("sub-table of the last element") }
        guard case .table(let a)? = root["a"]?.value else { return XCTFail("table a") }
        XCTAssertEqual(a.line, 5)
    }

    func testDuplicatesAndRedefinitionsAreRejectedWithBothLines() {
        assertRejects("a = 1\nb = 2\na = 3\n", line: 3, "duplicate key 'a' (first defined on line 1)")
        assertRejects("[t]\nx = 1\n[u]\n[t]\n", line: 4, "table [t] is defined twice (first on line 1)")
        assertRejects("[t]\nx.y = 1\n[t.x]\n", line: 3, "table [t.x] was already defined on line 2")
        assertRejects("t = { a = 1 }\n[t]\n", line: 2, "was already defined on line 1")
        assertRejects("t = { a = 1 }\n[t.b]\n", line: 2, "cannot extend inline table 't'")
        assertRejects("[a.b]\nx = 1\n[a]\nb.y = 2\n", line: 4, "'a.b' was already defined on line 1")
        assertRejects("x = [1]\n[[x]]\n", line: 2, "cannot append [[x]]")
        assertRejects("x = 1\n[x]\n", line: 2, "conflicts with key 'x' defined on line 1")
        assertRejects("[a]\nb = 1\n[a.b.c]\n", line: 3, "already a value (line 2)")
        assertRejects("p = { a = 1, a = 2 }\n", line: 1, "duplicate key 'a'")
    }

    func testMalformedDocumentsNameTheLine() {
        assertRejects("\n\nkey = \n", line: 3, "missing value")
        assertRejects("a = 1 b = 2\n", line: 1, "one key = value per line")
        assertRejects("s = \"open\n", line: 1, "unterminated string")
        assertRejects("s = \"bad \\q escape\"\n", line: 1, "invalid escape sequence '\\q'")
        assertRejects("n = 01\n", line: 1, "invalid number '01'")
        assertRejects("n = 1__0\n", line: 1, "invalid number '1__0'")
        assertRejects("n = 1.\n", line: 1, "invalid number '1.'")
        assertRejects("n = .5\n", line: 1, "invalid")
        assertRejects("n = 99999999999999999999\n", line: 1, "invalid number")
        assertRejects("word = argon\n", line: 1, "strings must be quoted")
        assertRejects("d = 1979-05-27\n", line: 1, "dates and times are not supported")
        assertRejects("a = [1, 2\nb = 3\n", line: 2, "expected ',' or ']'")
        assertRejects("a = [1, 2,\n", line: 2, "unterminated array (opened on line 1)")
        assertRejects("t = { a = 1,\n b = 2 }\n", line: 1, "newline inside inline table")
        assertRejects("t = { a = 1, }\n", line: 1, "trailing comma in inline table")
        assertRejects("[t\nx = 1\n", line: 1, "expected ']'")
        assertRejects("= 3\n", line: 1, "where a key was expected")
        assertRejects("a = \"\"\"\nnever closed\n", line: 3, "unterminated multi-line string (opened on line 1)")
        assertRejects("a = 1\r\nb = 2\rc = 3\n", line: 2, "carriage return")
    }

    func testLessCommonValidForms() throws {
        let root = try parse(#"""
        empty = """
        """
        trailing = '''a'''''
        "" = 1
        spaced = [ ]
        deep = [{ a = [{ b = 1 }] }]
        [ sec . "with space" ]   # header with blanks and a quoted part
        k = "v" # comment after a value
        """#)
        XCTAssertEqual(string(root, "empty"), "")
        XCTAssertEqual(string(root, "trailing"), "a''")
        XCTAssertNotNil(root[""])
        guard case .table(let sec)? = root["sec"]?.value, case .table(let inner)? = sec["with space"]?.value else {
            return XCTFail("quoted header part")
        }
        XCTAssertEqual(inner.dottedPath, #"sec."with space""#)
        XCTAssertEqual(inner["k"]?.line, 8)
        guard case .array(let deep)? = root["deep"]?.value, case .table(let t) = deep[0].value,
              case .array(let a)? = t["a"]?.value, case .table(let u) = a[0].value, case .integer(1)? = u["b"]?.value
        else { return XCTFail("nested inline tables in arrays") }
    }

    func testInvalidNumberForms() {
        for bad in ["1.e5", "0x", "+0x10", "-0b1", "1e", "1_", "_1", "0_1", "1.5_", "0o8", "0b102", "--1", "1e5.0"] {
            assertRejects("n = \(bad)\n", line: 1, "invalid")
        }
        assertRejects("a = \"x\" \"y\"\n", line: 1, "one key = value per line")
        assertRejects("a = {}\na.b = 1\n", line: 2, "'a' was already defined on line 1")
        assertRejects("[[a]]\n[a]\n", line: 2, "conflicts with key 'a'")
    }

    func testWindowsLineEndingsCountLines() throws {
        let root = try parse("a = 1\r\n\r\nb = [\r\n 1,\r\n]\r\nc = 'x'\r\n")
        XCTAssertEqual(root["b"]?.line, 3)
        XCTAssertEqual(root["c"]?.line, 6)
    }

    func testSingleValueParsingForOverrides() throws {
        guard case .array(let items) = try TOMLParser.parseValue("[2, 2, 2]", file: "cli").value else { return XCTFail() }
        XCTAssertEqual(items.count, 3)
        XCTAssertThrowsError(try TOMLParser.parseValue("1 2", file: "cli"))
    }

    /// Ten thousand nested arrays overflowed the stack (SIGSEGV) in the recursive descent; now
    /// nesting stops at 100 levels with an error naming the line. Depth 100 still parses.
    func testDeepNestingIsAnErrorNotAStackOverflow() throws {
        for (open, close) in [("[", "]"), ("{a = ", "}")] {
            let deep = "x = " + String(repeating: open, count: 10_000) + "1" + String(repeating: close, count: 10_000) + "\n"
            XCTAssertThrowsError(try TOMLParser.parse("\n" + deep, file: "t.toml")) { error in
                XCTAssertTrue("\(error)".contains("nested more than 100 deep"), "\(error)")
                XCTAssertTrue("\(error)".contains("t.toml:2"), "\(error)")
            }
        }
        let fine = "x = " + String(repeating: "[", count: 100) + "1" + String(repeating: "]", count: 100)
        XCTAssertNoThrow(try TOMLParser.parse(fine, file: "t.toml"))
    }
}
