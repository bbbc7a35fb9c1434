"""Evidence: results of checks, review verdicts and the report that goes on the PR."""
