"""Test erosion in Go, JavaScript/TypeScript, Rust, Java, C# and Ruby (patterns), and in test configuration."""

from __future__ import annotations

import pytest

from activities.review.erosion import FileChange, erosion_findings

GO = """package orders

import "testing"

func TestTotal(t *testing.T) {
\tif Total([]int{1, 2}) != 3 {
\t\tt.Fatalf("want 3")
\t}
}

func TestEmpty(t *testing.T) {
\tif Total(nil) != 0 {
\t\tt.Errorf("want 0")
\t}
}
"""
JS = """import { total } from './orders';

describe('total', () => {
  it('sums the basket', () => {
    expect(total([1, 2])).toBe(3);
  });
  test('is zero when empty', () => {
    expect(total([])).toBe(0);
  });
});
"""
RUST = """#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums() {
        assert_eq!(total(&[1, 2]), 3);
    }

    #[test]
    fn empty() {
        assert_eq!(total(&[]), 0);
    }
}
"""
JAVA = """class OrdersTest {
    @Test
    void sums() {
        assertEquals(3, Orders.total(1, 2));
    }

    @Test
    void empty() {
        assertEquals(0, Orders.total());
    }
}
"""


def _one(path: str, before: str, after: str | None, status: str = "M") -> list[tuple[str, int | None, str | None]]:
    change = FileChange(path=path, status=status, before=before, after=after)
    return [(f.rule, f.line, f.language) for f in erosion_findings([change], [])]


@pytest.mark.parametrize(("path", "source", "language"), [
    ("orders/orders_test.go", GO, "go"), ("src/orders.test.ts", JS, "typescript"),
    ("src/__tests__/orders.js", JS, "javascript"), ("tests/orders_test.rs", RUST, "rust"),
    ("src/test/java/OrdersTest.java", JAVA, "java")])
def test_an_unchanged_file_has_no_findings_and_a_deleted_one_does(path: str, source: str, language: str) -> None:
    assert _one(path, source, source + "\n") == []
    assert _one(path, source, None, status="D") == [("test-deleted", None, language)]


def test_go_removed_test_skip_and_trivial_assertion() -> None:
    removed = GO.split("func TestEmpty")[0]
    assert [r for r, _l, _g in _one("orders_test.go", GO, removed)] == ["test-removed", "assertions-removed"]
    skipped = GO.replace("func TestEmpty(t *testing.T) {\n", "func TestEmpty(t *testing.T) {\n\tt.Skip(\"flaky\")\n")
    assert _one("orders_test.go", GO, skipped) == [("skip-added", 12, "go")]
    renamed = GO.replace("func TestEmpty(", "func TestTotalOfNothing(")
    assert _one("orders_test.go", GO, renamed) == []


def test_javascript_skip_focus_and_trivial_assertions() -> None:
    assert _one("a.spec.js", JS, JS.replace("it('sums", "it.skip('sums")) == [("skip-added", 4, "javascript")]
    assert _one("a.spec.js", JS, JS.replace("it('sums", "xit('sums")) == [("skip-added", 4, "javascript")]
    assert _one("a.spec.js", JS, JS.replace("test('is zero", "test.only('is zero")) == [("skip-added", 7, "javascript")]
    trivial = JS.replace("expect(total([])).toBe(0);", "expect(true).toBe(true);")
    assert _one("a.spec.js", JS, trivial) == [("trivial-assertion", 8, "javascript")]
    removed = JS.replace("  test('is zero when empty', () => {\n    expect(total([])).toBe(0);\n  });\n", "")
    assert [r for r, _l, _g in _one("a.spec.js", JS, removed)] == ["test-removed", "assertions-removed"]


def test_rust_ignore_and_removed_assertions() -> None:
    ignored = RUST.replace("    #[test]\n    fn empty", "    #[test]\n    #[ignore]\n    fn empty")
    assert _one("tests/orders_test.rs", RUST, ignored) == [("skip-added", 11, "rust")]
    weaker = RUST.replace("assert_eq!(total(&[]), 0);", "let _ = total(&[]);")
    assert _one("tests/orders_test.rs", RUST, weaker) == [("assertions-removed", None, "rust")]


def test_java_disabled_and_csharp_and_ruby_skips() -> None:
    disabled = JAVA.replace("    @Test\n    void empty", "    @Disabled\n    @Test\n    void empty")
    assert _one("src/test/java/OrdersTest.java", JAVA, disabled) == [("skip-added", 7, "java")]
    csharp = ("public class OrdersTests {\n    [Fact]\n    public void Sums() {\n"
              "        Assert.Equal(3, Total(1, 2));\n    }\n}\n")
    skipped = csharp.replace("[Fact]", '[Fact(Skip = "later")]')
    assert _one("OrdersTests.cs", csharp, skipped) == [("skip-added", 2, "csharp")]
    ruby = "describe Orders do\n  it 'sums' do\n    expect(total(1, 2)).to eq(3)\n  end\nend\n"
    assert _one("spec/orders_spec.rb", ruby, ruby.replace("  it 'sums'", "  xit 'sums'")) == [
        ("skip-added", 2, "ruby")]


@pytest.mark.parametrize(("path", "before", "after", "rule", "line"), [
    ("pyproject.toml", "[tool.coverage.report]\nfail_under = 90\n", "[tool.coverage.report]\nfail_under = 60\n",
     "coverage-lowered", 2),
    ("setup.cfg", "[tool:pytest]\naddopts = --cov --cov-fail-under=85\n",
     "[tool:pytest]\naddopts = --cov --cov-fail-under=50\n", "coverage-lowered", 2),
    ("jest.config.js", "module.exports = { coverageThreshold: { global: { lines: 80, branches: 70 } } };\n",
     "module.exports = { coverageThreshold: { global: { lines: 80, branches: 10 } } };\n", "coverage-lowered", 1),
    (".coveragerc", "[report]\nfail_under = 75\n", "[report]\nshow_missing = true\n", "coverage-lowered", 2),
    ("Makefile", "test:\n\tpytest -q\n", "test:\n\tpytest -q || true\n", "test-command-weakened", 2),
    ("package.json", '{"scripts": {"test": "jest"}}\n', '{"scripts": {"test": "jest --passWithNoTests"}}\n',
     "test-command-weakened", 1),
    ("tox.ini", "[testenv]\ncommands = pytest\n", "[testenv]\ncommands = pytest --ignore=tests/slow\n",
     "test-command-weakened", 2),
    ("package.json", '{"scripts": {"test": "jest"}}\n', '{"scripts": {"test": "echo ok"}}\n',
     "test-command-weakened", 1),
])
def test_weakened_test_configuration(path: str, before: str, after: str, rule: str, line: int) -> None:
    assert _one(path, before, after) == [(rule, line, None)]


def test_a_raised_threshold_or_an_unrelated_config_edit_is_fine() -> None:
    assert _one("pyproject.toml", "[tool.coverage.report]\nfail_under = 60\n",
                "[tool.coverage.report]\nfail_under = 90\n") == []
    assert _one("Makefile", "test:\n\tpytest -q || true\n", "lint:\n\truff check\ntest:\n\tpytest -q || true\n") == []
