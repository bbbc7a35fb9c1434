"""The Python test-erosion analysis on real-world shapes: pytest functions, parametrised tests,
unittest classes, fixtures, module markers, and renamed or moved tests that must not be flagged."""

from __future__ import annotations

import textwrap

from activities.review.erosion import FileChange, erosion_findings


def _change(before: str | None, after: str | None, path: str = "tests/test_orders.py", status: str = "M",
            old_path: str | None = None) -> FileChange:
    return FileChange(path=path, old_path=old_path, status=status,
                      before=textwrap.dedent(before) if before is not None else None,
                      after=textwrap.dedent(after) if after is not None else None)


def _rules(changes: list[FileChange]) -> list[tuple[str, str, int | None]]:
    return [(f.rule, f.path, f.line) for f in erosion_findings(changes, [])]


PYTEST_MODULE = """\
import pytest

from orders import total


@pytest.fixture
def basket():
    return [1, 2]


def test_total(basket):
    assert total(basket) == 3
    assert total([]) == 0


@pytest.mark.parametrize("items, expected", [([1], 1), ([1, 2], 3), ([], 0)])
def test_total_cases(items, expected):
    assert total(items) == expected


class TestRefunds:
    def test_refund_is_negative(self):
        assert total([-1]) == -1

    def helper(self):
        return 1
"""


def test_an_unchanged_module_and_an_added_test_have_no_findings() -> None:
    after = PYTEST_MODULE + "\n\ndef test_total_of_one():\n    assert total([5]) == 5\n"
    assert _rules([_change(PYTEST_MODULE, after)]) == []


def test_a_removed_test_is_found_with_its_base_line() -> None:
    after = PYTEST_MODULE.replace("def test_total(basket):\n    assert total(basket) == 3\n    assert total([]) == 0\n",
                                  "")
    findings = erosion_findings([_change(PYTEST_MODULE, after)], [])
    assert [(f.rule, f.line, f.side, f.language) for f in findings] == [("test-removed", 11, "base", "python")]
    assert "`test_total` removed (2 assertion(s))" in findings[0].message


def test_a_removed_method_of_a_test_class_is_named_with_its_class() -> None:
    after = PYTEST_MODULE.replace("    def test_refund_is_negative(self):\n        assert total([-1]) == -1\n\n", "")
    [finding] = erosion_findings([_change(PYTEST_MODULE, after)], [])
    assert finding.rule == "test-removed" and "`TestRefunds.test_refund_is_negative`" in finding.message


def test_a_renamed_test_that_keeps_its_assertions_is_not_flagged() -> None:
    after = PYTEST_MODULE.replace("def test_total(basket):", "def test_total_sums_the_basket(basket):")
    assert _rules([_change(PYTEST_MODULE, after)]) == []


def test_a_renamed_test_with_a_reworded_body_but_every_assertion_is_not_flagged() -> None:
    after = PYTEST_MODULE.replace(
        "def test_total(basket):\n    assert total(basket) == 3\n",
        "def test_sum(basket):\n    basket = list(basket)\n    assert total(basket) == 3\n"
        "    assert total(basket) > 0\n")
    assert _rules([_change(PYTEST_MODULE, after)]) == []


def test_a_renamed_test_that_drops_an_assertion_is_flagged_as_removed() -> None:
    after = PYTEST_MODULE.replace("def test_total(basket):\n    assert total(basket) == 3\n    assert total([]) == 0\n",
                                  "def test_sum(basket):\n    assert total(basket) == 3\n")
    assert [r for r, _p, _l in _rules([_change(PYTEST_MODULE, after)])] == ["test-removed"]


def test_a_test_moved_to_another_file_is_not_flagged() -> None:
    moved = "from orders import total\n\n\nclass TestRefunds:\n    def test_refund_is_negative(self):\n" \
            "        assert total([-1]) == -1\n"
    after = PYTEST_MODULE.split("class TestRefunds")[0]
    changes = [_change(PYTEST_MODULE, after), _change(None, moved, path="tests/test_refunds.py", status="A")]
    assert _rules(changes) == []


def test_a_deleted_test_file_is_flagged_unless_its_tests_live_on() -> None:
    deleted = _change(PYTEST_MODULE, None, status="D")
    [finding] = erosion_findings([deleted], [])
    assert finding.rule == "test-deleted" and "3 test(s)" in finding.message
    copy = _change(None, PYTEST_MODULE, path="tests/orders/test_orders.py", status="A")
    assert _rules([deleted, copy]) == []


def test_a_deleted_helper_module_without_tests_is_not_erosion() -> None:
    helper = _change("def make_order():\n    return {}\n", None, path="tests/factories.py", status="D")
    assert _rules([helper]) == []


def test_fixtures_are_not_tests_so_removing_one_is_not_flagged() -> None:
    after = PYTEST_MODULE.replace("@pytest.fixture\ndef basket():\n    return [1, 2]\n", "")
    assert _rules([_change(PYTEST_MODULE, after)]) == []


def test_removed_assertions_are_counted_per_test() -> None:
    after = PYTEST_MODULE.replace("    assert total([]) == 0\n", "")
    [finding] = erosion_findings([_change(PYTEST_MODULE, after)], [])
    assert (finding.rule, finding.line) == ("assertions-removed", 11)
    assert "had 2 assertion(s) that can fail, now 1" in finding.message


def test_an_assertion_replaced_by_a_trivially_true_one_is_found_at_its_line() -> None:
    for trivial in ("assert True", "assert 1", "assert total == total", "assert (total([]), 'empty')",
                    "assert not False"):
        after = PYTEST_MODULE.replace("    assert total([]) == 0\n", f"    {trivial}\n")
        [finding] = erosion_findings([_change(PYTEST_MODULE, after)], [])
        assert (finding.rule, finding.line) == ("trivial-assertion", 13), trivial


def test_unittest_trivial_assertions_and_removed_assertions() -> None:
    before = """\
    import unittest


    class GreetingTest(unittest.TestCase):
        def test_default(self):
            self.assertEqual(greeting(), "Hello, world")
            with self.assertRaises(ValueError):
                greeting(1)
    """
    after = before.replace('self.assertEqual(greeting(), "Hello, world")', "self.assertTrue(True)")
    [finding] = erosion_findings([_change(before, after)], [])
    assert finding.rule == "trivial-assertion" and "GreetingTest.test_default" in finding.message


def test_a_test_emptied_to_pass_is_flagged_even_without_assertions() -> None:
    before = "def test_smoke():\n    run_everything()\n"
    after = "def test_smoke():\n    pass\n"
    assert [r for r, _p, _l in _rules([_change(before, after)])] == ["test-emptied"]


def test_fewer_parametrised_cases_are_flagged() -> None:
    after = PYTEST_MODULE.replace("[([1], 1), ([1, 2], 3), ([], 0)]", "[([1], 1)]")
    [finding] = erosion_findings([_change(PYTEST_MODULE, after)], [])
    assert finding.rule == "cases-removed" and "1 parametrised case(s), down from 3" in finding.message


def test_skip_and_xfail_markers_added_anywhere_are_found() -> None:
    shapes = {
        "@pytest.mark.skip(reason='flaky')\ndef test_total(": ("test_total", "skip"),
        "@pytest.mark.skipif(True, reason='x')\ndef test_total(": ("test_total", "skipif"),
        "@pytest.mark.xfail\ndef test_total(": ("test_total", "xfail"),
        "@unittest.skip('later')\ndef test_total(": ("test_total", "skip"),
    }
    for decorated, (scope, marker) in shapes.items():
        after = PYTEST_MODULE.replace("def test_total(", decorated)
        [finding] = erosion_findings([_change(PYTEST_MODULE, after)], [])
        assert finding.rule == "skip-added" and f"`{marker}` added to `{scope}`" in finding.message, decorated


def test_skips_inside_a_test_on_a_class_and_on_the_module_are_found() -> None:
    inside = PYTEST_MODULE.replace("    assert total(basket) == 3\n", "    pytest.skip('broken')\n"
                                   "    assert total(basket) == 3\n")
    on_class = PYTEST_MODULE.replace("class TestRefunds:", "@pytest.mark.skip\nclass TestRefunds:")
    on_module = PYTEST_MODULE.replace("from orders import total\n",
                                      "from orders import total\n\npytestmark = pytest.mark.skip('later')\n")
    assert [f.message for f in erosion_findings([_change(PYTEST_MODULE, inside)], [])] == [
        "`skip` added to `test_total`"]
    assert [f.message for f in erosion_findings([_change(PYTEST_MODULE, on_class)], [])] == [
        "`skip` added to `TestRefunds`"]
    assert [f.message for f in erosion_findings([_change(PYTEST_MODULE, on_module)], [])] == [
        "`skip` added to the whole module"]


def test_a_skip_that_was_already_there_is_not_a_finding() -> None:
    before = PYTEST_MODULE.replace("def test_total(", "@pytest.mark.skip\ndef test_total(")
    after = before + "\n\ndef test_more():\n    assert total([1]) == 1\n"
    assert _rules([_change(before, after)]) == []


def test_a_test_file_that_no_longer_parses_is_flagged() -> None:
    after = PYTEST_MODULE.replace("def test_total(basket):", "def test_total(basket)")
    [finding] = erosion_findings([_change(PYTEST_MODULE, after)], [])
    assert finding.rule == "test-unparseable"


def test_async_tests_and_mock_assertions_count() -> None:
    before = "async def test_calls(client):\n    await client.go()\n    client.go.assert_awaited_once()\n"
    after = "async def test_calls(client):\n    await client.go()\n"
    [finding] = erosion_findings([_change(before, after)], [])
    assert finding.rule == "assertions-removed"


def test_policy_patterns_make_more_files_tests() -> None:
    before = "def test_contract():\n    assert api() == 1\n"
    change = _change(before, "", path="checks/contract.py")
    assert erosion_findings([change], []) == []
    assert [f.rule for f in erosion_findings([change], ["checks/**"])] == ["test-removed"]
