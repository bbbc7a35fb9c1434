"""`python -m bench NAME [--quick|--smoke] [--json]`: run one benchmark (see bench/README.md)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

BENCHMARKS = {
    "orchestration": "bench.orchestration",
    "agent-loop": "bench.agent_loop",
    "admission": "bench.admission",
    "webhook": "bench.webhook",
    "parked": "bench.parked",
    "inference": "bench.inference",
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"} or args[0] not in BENCHMARKS:
        print(f"usage: python -m bench {{{','.join(BENCHMARKS)}}} [--quick|--smoke] [--json]", file=sys.stderr)
        known = not args or args[0] in {"-h", "--help"}
        return 0 if known else 2
    module = importlib.import_module(BENCHMARKS[args[0]])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    sys.exit(main())
