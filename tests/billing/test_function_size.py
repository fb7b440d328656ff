"""Billing's functions stay short enough to read in one screen: none is longer than 80 lines, from its
``def`` line to the last line of its body."""

import ast
from pathlib import Path

import billing

LIMIT = 80
BILLING = Path(billing.__file__).parent


def long_functions(source: str, name: str, limit: int = LIMIT) -> list[str]:
    """``file:line name (n lines)`` of each function or method of ``source`` longer than ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_billing_function_is_longer_than_80_lines():
    files = sorted(BILLING.glob("*.py"))
    assert len(files) > 5  # the check looks where the billing code is
    too_long = [line for path in files for line in long_functions(path.read_text(), path.name)]
    assert too_long == []


def test_the_check_names_a_long_function():
    source = "class Run:\n    def work(self):\n" + "        x = 1\n" * 80 + "\n\ndef short():\n    return 1\n"
    assert long_functions(source, "example.py") == ["example.py:2 work (81 lines)"]
