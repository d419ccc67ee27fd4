"""The server is the top floor: nothing in kever/, agent/, evals/, tools/, knowledge/ or
prompts/ imports kever.serve (the CLI names `kever serve` in its table of subcommands, a
string imported only when that subcommand runs)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOWER_FLOORS = ("kever", "agent", "evals", "tools", "knowledge", "prompts")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_no_lower_floor_imports_the_server():
    offenders = [f"{p.relative_to(ROOT)}: {name}" for floor in LOWER_FLOORS for p in sorted((ROOT / floor).rglob("*.py"))
                 for name in _imports(p) if name == "kever.serve" or name.startswith(("kever.serve.", "kever.server"))]
    assert offenders == []


def test_server_is_installed_as_kever_serve():
    import kever.serve
    import kever.serve.app

    assert Path(kever.serve.__file__).parent == ROOT / "serve"
    assert not (ROOT / "kever" / "server").exists()
