"""Test erosion in Python, read with the standard library's `ast`, before and after, per test.

A test is a `test*` function at module level, or a `test*` method of a `Test*` class or of a
`unittest.TestCase` subclass (pytest's and unittest's collection rules). For each one we count the
assertions that can fail (assert statements, `self.assert*`, `pytest.raises`, mock `assert_*`), the
ones that cannot (`assert True`, `assert x == x`, `assert (x, "msg")`, `assertTrue(1)`), skip and
xfail markers (on the test, its class or the module), and parametrised cases. A test that
disappears is matched against the tests the change adds anywhere: one that keeps its body or all its
assertions is a rename or a move, not a removal.
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field

from activities.review.erosion.testfiles import FileChange
from contracts.evidence import Finding

LANGUAGE = "python"
SKIP_MARKERS = {"skip", "skipif", "skipIf", "skipUnless", "xfail", "expectedFailure", "importorskip", "skipTest",
                "SkipTest"}
ASSERTING_CALLS = {"fail", "raises", "warns", "deprecated_call", "expect", "assert_that"}


@dataclass
class PyTest:
    name: str
    line: int
    assertions: int = 0
    trivial: list[int] = field(default_factory=list)
    statements: int = 0
    cases: int | None = 1
    fingerprint: str = ""
    assertion_prints: Counter[str] = field(default_factory=Counter)


@dataclass
class PyModule:
    tests: dict[str, PyTest] = field(default_factory=dict)
    # (scope, marker) -> line: scope is "" for the module, the class name, or the test's name
    skips: dict[tuple[str, str], int] = field(default_factory=dict)
    error: str | None = None


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _dump(node: ast.AST) -> str:
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _always_true(node: ast.expr) -> bool:
    """An assert condition that cannot fail."""
    if isinstance(node, ast.Constant):
        return bool(node.value)
    if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
        return bool(node.elts) if not isinstance(node, ast.Dict) else bool(node.keys)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not) and isinstance(node.operand, ast.Constant):
        return not node.operand.value
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return any(_always_true(value) for value in node.values)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq | ast.Is | ast.LtE |
                                                                              ast.GtE):
        return _dump(node.left) == _dump(node.comparators[0])
    return False


def _trivial_call(name: str, args: list[ast.expr]) -> bool:
    """`self.assertTrue(True)`, `self.assertEqual(x, x)` and their kin."""
    if not args:
        return False
    first = args[0]
    if name in {"assertTrue", "assert_", "failUnless"}:
        return _always_true(first)
    if name in {"assertFalse", "failIf"}:
        return isinstance(first, ast.Constant) and not first.value
    if name == "assertIsNotNone":
        return isinstance(first, ast.Constant) and first.value is not None
    if name == "assertIsNone":
        return isinstance(first, ast.Constant) and first.value is None
    if name in {"assertEqual", "assertEquals", "assertIs", "assertCountEqual", "assertDictEqual", "assertListEqual",
                "assertAlmostEqual", "assertGreaterEqual", "assertLessEqual"} and len(args) >= 2:
        return _dump(first) == _dump(args[1])
    return False


def _assertion(node: ast.AST) -> tuple[bool, bool]:
    """(is an assertion, is trivially true)."""
    if isinstance(node, ast.Assert):
        return True, _always_true(node.test)
    if isinstance(node, ast.Call):
        name = _last(_dotted(node.func))
        if name.lower().startswith("assert") or name in ASSERTING_CALLS:
            return True, _trivial_call(name, list(node.args))
    return False, False


def _skip_marker(expr: ast.expr) -> str | None:
    name = _dotted(expr)
    return name if _last(name) in SKIP_MARKERS else None


def _skip_in(node: ast.AST) -> str | None:
    """`pytest.skip(...)`, `self.skipTest(...)` or `raise SkipTest(...)` inside a test."""
    if isinstance(node, ast.Call):
        return _skip_marker(node.func)
    if isinstance(node, ast.Raise) and node.exc is not None:
        return _skip_marker(node.exc)
    return None


def _pytestmark(statement: ast.stmt) -> list[str]:
    """Skip markers in a `pytestmark = ...` assignment (one marker or a list of them)."""
    if not isinstance(statement, ast.Assign) or not any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in statement.targets):
        return []
    values = statement.value.elts if isinstance(statement.value, ast.List | ast.Tuple) else [statement.value]
    return [marker for value in values if (marker := _skip_marker(value))]


def _cases(decorators: list[ast.expr]) -> int | None:
    """How many cases `pytest.mark.parametrize` decorators make (None when not literal)."""
    total = 1
    for decorator in decorators:
        if isinstance(decorator, ast.Call) and _last(_dotted(decorator.func)) == "parametrize":
            values = decorator.args[1] if len(decorator.args) > 1 else next(
                (k.value for k in decorator.keywords if k.arg == "argvalues"), None)
            if not isinstance(values, ast.List | ast.Tuple):
                return None
            total *= len(values.elts)
    return total


def _body_without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(
            body[0].value.value, str):
        return body[1:]
    return body


def _test(node: ast.FunctionDef | ast.AsyncFunctionDef, name: str, module: PyModule) -> PyTest:
    body = _body_without_docstring(node.body)
    test = PyTest(name=name, line=node.lineno, cases=_cases(node.decorator_list),
                  fingerprint=_dump(ast.Module(body=body, type_ignores=[])))
    test.statements = sum(1 for s in body if not isinstance(s, ast.Pass) and not (
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)))
    for decorator in node.decorator_list:
        if marker := _skip_marker(decorator):
            module.skips[(name, _last(marker))] = decorator.lineno
    for child in ast.walk(ast.Module(body=body, type_ignores=[])):
        is_assertion, trivial = _assertion(child)
        if is_assertion:
            line = getattr(child, "lineno", node.lineno)
            if trivial:
                test.trivial.append(line)
            else:
                test.assertions += 1
                test.assertion_prints[_dump(child)] += 1
        elif marker := _skip_in(child):
            module.skips[(name, _last(marker))] = getattr(child, "lineno", node.lineno)
    return test


def _is_test_class(node: ast.ClassDef) -> bool:
    return node.name.startswith("Test") or any(_last(_dotted(base)).endswith("TestCase") for base in node.bases)


def _collect(body: list[ast.stmt], prefix: str, module: PyModule) -> None:
    for statement in body:
        for mark in _pytestmark(statement):
            module.skips[(prefix.rstrip("."), _last(mark))] = statement.lineno
        if isinstance(statement, ast.Expr) and (found := _skip_marker(statement.value)) and not prefix:
            module.skips[("", _last(found))] = statement.lineno  # pytest.skip(..., allow_module_level=True)
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name.startswith("test"):
            name = prefix + statement.name
            module.tests[name] = _test(statement, name, module)
        elif isinstance(statement, ast.ClassDef) and _is_test_class(statement):
            for decorator in statement.decorator_list:
                if marker := _skip_marker(decorator):
                    module.skips[(prefix + statement.name, _last(marker))] = decorator.lineno
            _collect(statement.body, f"{prefix}{statement.name}.", module)


def analyse(text: str | None) -> PyModule:
    module = PyModule()
    if text is None:
        return module
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as error:
        module.error = f"does not parse: {getattr(error, 'msg', error)} (line {getattr(error, 'lineno', '?')})"
        return module
    _collect(tree.body, "", module)
    return module


def _keeps(removed: PyTest, added: PyTest) -> bool:
    """`added` is `removed` renamed or moved: the same body, or every assertion it had."""
    if removed.fingerprint == added.fingerprint:
        return True
    if removed.assertions == 0:
        return False
    return not (removed.assertion_prints - added.assertion_prints)


def _finding(rule: str, path: str, line: int | None, message: str, side: str = "change") -> Finding:
    return Finding(rule=rule, path=path, line=line, language=LANGUAGE, message=message,
                   side="base" if side == "base" else "change")


def _compare(path: str, old: PyTest, new: PyTest) -> list[Finding]:
    findings: list[Finding] = []
    if new.assertions < old.assertions:
        rule = "assertions-removed"
        what = f"`{new.name}` had {old.assertions} assertion(s) that can fail, now {new.assertions}"
        if len(new.trivial) > len(old.trivial):
            rule = "trivial-assertion"
            what += f"; added an assertion that cannot fail at line {new.trivial[-1]}"
        findings.append(_finding(rule, path, new.trivial[-1] if rule == "trivial-assertion" else new.line, what))
    elif len(new.trivial) > len(old.trivial):
        findings.append(_finding("trivial-assertion", path, new.trivial[-1],
                                 f"`{new.name}` gained an assertion that cannot fail"))
    if old.statements and not new.statements:
        findings.append(_finding("test-emptied", path, new.line, f"`{new.name}` no longer does anything"))
    if old.cases is not None and new.cases is not None and new.cases < old.cases:
        findings.append(_finding("cases-removed", path, new.line,
                                 f"`{new.name}` runs {new.cases} parametrised case(s), down from {old.cases}"))
    return findings


def python_findings(changes: list[FileChange]) -> list[Finding]:
    """Findings over all changed Python test files at once, so a test moved between files is not lost."""
    findings: list[Finding] = []
    removed: list[tuple[str, PyTest]] = []
    added: list[PyTest] = []
    deleted_files: dict[str, int] = {}
    for change in changes:
        before, after = analyse(change.before), analyse(change.after)
        old_path = change.old_path or change.path
        if change.after is not None and after.error and not before.error:
            findings.append(_finding("test-unparseable", change.path, None,
                                     f"the test file {after.error}; none of its tests can run"))
            continue
        for key, line in after.skips.items():
            if key not in before.skips:
                scope, marker = key
                where = f"`{scope}`" if scope else "the whole module"
                findings.append(_finding("skip-added", change.path, line, f"`{marker}` added to {where}"))
        for name, old in before.tests.items():
            new = after.tests.get(name)
            if new is None:
                removed.append((old_path, old))
                if change.deleted:
                    deleted_files[old_path] = deleted_files.get(old_path, 0) + 1
            else:
                findings.extend(_compare(change.path, old, new))
        added.extend(test for name, test in after.tests.items() if name not in before.tests)
    unmatched: list[tuple[str, PyTest]] = []
    for path, old in removed:
        match = next((candidate for candidate in added if _keeps(old, candidate)), None)
        if match is None:
            unmatched.append((path, old))
        else:
            added.remove(match)
    lost_by_file: dict[str, list[PyTest]] = {}
    for path, old in unmatched:
        lost_by_file.setdefault(path, []).append(old)
    for path, lost in lost_by_file.items():
        if path in deleted_files:
            names = ", ".join(f"`{t.name}`" for t in lost[:5]) + (" ..." if len(lost) > 5 else "")
            findings.append(_finding("test-deleted", path, None,
                                     f"test file deleted with {len(lost)} test(s) no other file keeps: {names}"))
            continue
        for old in lost:
            findings.append(_finding("test-removed", path, old.line, (
                f"`{old.name}` removed ({old.assertions} assertion(s)); no test the change adds keeps its "
                "body or its assertions"), side="base"))
    return findings
