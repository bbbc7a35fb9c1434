"""Which changed files are tests, and in which language, by the usual conventions plus the policy's globs."""

from __future__ import annotations

import difflib
import posixpath

from pydantic import BaseModel

from rules.gateway.paths import matches

# Conventions of the common test runners: pytest/unittest, go test, Jest/Vitest/Mocha, cargo, JUnit,
# xUnit/NUnit, RSpec/minitest.
TEST_FILE_PATTERNS = [
    "**/test_*.py", "**/*_test.py", "**/tests.py", "**/conftest.py",
    "**/*_test.go",
    "**/*.test.[jt]s", "**/*.spec.[jt]s", "**/*.test.[jt]sx", "**/*.spec.[jt]sx", "**/*.test.[mc]js",
    "**/*.spec.[mc]js", "**/__tests__/**",
    "**/*_test.rs", "**/*_tests.rs",
    "**/*Test.java", "**/*Tests.java", "**/*IT.java", "**/*Test.kt", "**/*Tests.kt", "**/src/test/**",
    "**/*Tests.cs", "**/*Test.cs",
    "**/*_spec.rb", "**/*_test.rb", "**/test_*.rb",
]
# Folders whose source files are tests, whatever their names (helpers there are tests' code too).
TEST_FOLDERS = ["tests/**", "test/**", "spec/**", "**/tests/**", "**/test/**", "**/spec/**", "testing/**"]
SOURCE_EXTENSIONS = {".py", ".go", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".rs", ".java", ".kt", ".cs", ".rb"}
LANGUAGES = {
    ".py": "python", ".go": "go", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".ts": "typescript", ".tsx": "typescript", ".rs": "rust", ".java": "java", ".kt": "kotlin",
    ".cs": "csharp", ".rb": "ruby",
}


class FileChange(BaseModel):
    """One changed file with both versions' text (None where a side does not exist or is not text)."""

    path: str
    old_path: str | None = None
    status: str = "M"  # git's letter: A added, M modified, D deleted, R renamed
    before: str | None = None
    after: str | None = None

    @property
    def deleted(self) -> bool:
        return self.status == "D"


def language_of(path: str) -> str | None:
    return LANGUAGES.get(posixpath.splitext(path)[1].lower())


def is_test_file(path: str, extra_patterns: list[str] | None = None) -> bool:
    """A source file named or placed as a test, or one the policy's `tests.patterns` names."""
    if extra_patterns and matches(path, extra_patterns):
        return True
    if posixpath.splitext(path)[1].lower() not in SOURCE_EXTENSIONS:
        return False
    return bool(matches(path, TEST_FILE_PATTERNS) or matches(path, TEST_FOLDERS))


def added_line_numbers(before: str, after: str) -> list[int]:
    """1-based numbers of the lines of `after` that the change added or rewrote."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    return [j + 1 for tag, _i1, _i2, j1, j2 in matcher.get_opcodes() if tag in {"insert", "replace"}
            for j in range(j1, j2)]
