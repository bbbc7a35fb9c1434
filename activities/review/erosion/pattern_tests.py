"""Test erosion in languages other than Python, by well-tested line patterns per test framework.

These are patterns, not parsers: they see tests declared the usual way (`func TestX(t *testing.T)`,
`it("...")`, `#[test]`, `@Test`, `[Fact]`, `it '...'`) and the usual assertion and skip forms. Each
finding names the language, so a reader knows which patterns judged the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from activities.review.erosion.testfiles import FileChange, added_line_numbers, language_of
from contracts.evidence import Finding


@dataclass(frozen=True)
class Framework:
    """How one language declares tests, skips them and asserts. `test` captures the test's name."""

    test: re.Pattern[str]
    skip: re.Pattern[str]
    assertion: re.Pattern[str]
    trivial: re.Pattern[str]


_JS = Framework(
    # skipped and focused forms still declare the test: skipping is a finding of its own
    test=re.compile(r"""\b[xf]?(?:it|test)(?:\.(?:skip|only|todo|each\(.*?\)))?\s*\(\s*(['"`])(?P<name>.+?)\1"""),
    skip=re.compile(r"""\b(?:it|test|describe|context)\.(?:skip|todo|only)\b|\bx(?:it|test|describe)\s*\(|"""
                    r"""\bf(?:it|describe)\s*\("""),
    assertion=re.compile(r"\bexpect\s*\(|\bassert(?:\.\w+)?\s*\(|\.should\b"),
    trivial=re.compile(r"\bexpect\s*\(\s*(?:true|1)\s*\)\s*\.\s*(?:toBe|toEqual|toBeTruthy)\s*\(\s*(?:true|1)?\s*\)|"
                       r"\bassert(?:\.ok)?\s*\(\s*true\s*\)"),
)
FRAMEWORKS: dict[str, Framework] = {
    "go": Framework(
        test=re.compile(r"^\s*func\s+(?P<name>(?:Test|Fuzz|Example)\w*)\s*\(", re.M),
        skip=re.compile(r"\b\w+\.Skip(?:Now|f)?\s*\("),
        assertion=re.compile(r"\b\w+\.(?:Error|Errorf|Fatal|Fatalf|Fail|FailNow)\s*\(|\b(?:assert|require)\.\w+\s*\("),
        trivial=re.compile(r"\b(?:assert|require)\.True\s*\(\s*\w+\s*,\s*true\s*[,)]"),
    ),
    "javascript": _JS,
    "typescript": _JS,
    "rust": Framework(
        test=re.compile(r"#\[(?:tokio::)?test[^\]]*\]\s*(?:#\[[^\]]*\]\s*)*(?:pub\s+)?(?:async\s+)?fn\s+(?P<name>\w+)"),
        skip=re.compile(r"#\[ignore\b"),
        assertion=re.compile(r"\b(?:assert|assert_eq|assert_ne|debug_assert\w*)!\s*\(|#\[should_panic"),
        trivial=re.compile(r"\bassert!\s*\(\s*true\s*[,)]"),
    ),
    "java": Framework(
        test=re.compile(r"@(?:Test|ParameterizedTest|RepeatedTest)\b[^\n]*\n(?:\s*@[^\n]*\n)*\s*(?:public\s+)?"
                        r"(?:void|fun)\s+(?P<name>\w+)"),
        skip=re.compile(r"@(?:Disabled|Ignore)\b|\bassume(?:True|False|That)\s*\("),
        assertion=re.compile(r"\bassert\w*\s*\(|\bverify\s*\(|\bfail\s*\("),
        trivial=re.compile(r"\bassertTrue\s*\(\s*true\s*\)|\bassertFalse\s*\(\s*false\s*\)"),
    ),
    "csharp": Framework(
        test=re.compile(r"\[(?:Fact|Theory|Test|TestMethod|TestCase)[^\]]*\]\s*(?:\[[^\]]*\]\s*)*public\s+"
                        r"(?:async\s+)?(?:void|Task)\s+(?P<name>\w+)"),
        skip=re.compile(r"Skip\s*=|\[Ignore\b"),
        assertion=re.compile(r"\bAssert\.\w+\s*\(|\.Should\(\)"),
        trivial=re.compile(r"\bAssert\.(?:True\s*\(\s*true|False\s*\(\s*false)\s*\)"),
    ),
    "ruby": Framework(
        test=re.compile(r"""^\s*x?(?:it|specify|scenario|test)\s*\(?\s*(['"])(?P<name>.+?)\1|^\s*def\s+(?P<def>test_\w+)""",
                        re.M),
        skip=re.compile(r"^\s*(?:xit|xspecify|xdescribe|xcontext|skip|pending)\b", re.M),
        assertion=re.compile(r"\bexpect\s*[({]|\bassert\w*\b|\.should\b|\brefute\w*\b"),
        trivial=re.compile(r"\bexpect\s*\(\s*true\s*\)\s*\.to\s+(?:be\s+true|eq\s*\(?\s*true)|\bassert\s*\(?\s*true\b"),
    ),
}
FRAMEWORKS["kotlin"] = FRAMEWORKS["java"]


def _names(framework: Framework, text: str) -> dict[str, int]:
    """Test name -> line."""
    found: dict[str, int] = {}
    for match in framework.test.finditer(text):
        name = match.groupdict().get("name") or match.groupdict().get("def") or ""
        found.setdefault(name, text.count("\n", 0, match.start("name" if match.group("name") else "def")) + 1)
    return found


def _count(pattern: re.Pattern[str], text: str) -> int:
    return sum(1 for _ in pattern.finditer(text))


def _added_lines(before: str, after: str, pattern: re.Pattern[str]) -> list[int]:
    """Lines of `after` that the change added and that match `pattern`."""
    lines = after.splitlines()
    return [number for number in added_line_numbers(before, after) if pattern.search(lines[number - 1])]


def pattern_findings(change: FileChange) -> list[Finding]:
    """Findings for one changed test file in a language with a framework above (none otherwise)."""
    language = language_of(change.path) or language_of(change.old_path or "")
    framework = FRAMEWORKS.get(language or "")
    if framework is None:
        return []
    before, after = change.before or "", change.after or ""

    def finding(rule: str, line: int | None, message: str, side: str = "change") -> Finding:
        return Finding(rule=rule, path=change.path, line=line, language=language, message=message,
                       side="base" if side == "base" else "change")

    old_tests, new_tests = _names(framework, before), _names(framework, after)
    if change.deleted:
        # a deleted file where no test was seen is a helper; one that could not be read counts as tests
        return [finding("test-deleted", None, f"test file deleted with {len(old_tests)} test(s)")] if (
            old_tests or change.before is None) else []
    findings: list[Finding] = []
    gone = [name for name in old_tests if name not in new_tests]
    new = [name for name in new_tests if name not in old_tests]
    if len(gone) > len(new):
        for name in gone:
            findings.append(finding("test-removed", old_tests[name], (
                f"`{name}` removed; {len(old_tests)} test(s) before, {len(new_tests)} after"), side="base"))
    old_asserts, new_asserts = _count(framework.assertion, before), _count(framework.assertion, after)
    old_trivial, new_trivial = _count(framework.trivial, before), _count(framework.trivial, after)
    if new_asserts - new_trivial < old_asserts - old_trivial:
        trivial_lines = _added_lines(before, after, framework.trivial)
        rule = "trivial-assertion" if trivial_lines else "assertions-removed"
        findings.append(finding(rule, trivial_lines[0] if trivial_lines else None, (
            f"assertions that can fail: {old_asserts - old_trivial} before, {new_asserts - new_trivial} after")))
    for line in _added_lines(before, after, framework.skip):
        findings.append(finding("skip-added", line, after.splitlines()[line - 1].strip()[:120]))
    return findings
