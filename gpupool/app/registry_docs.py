"""The docs tables generated from the registries (scripts/gen-docs writes them; a unit test fails
when a file on disk differs): export formats and audit checks in docs/contract.md, node checks in
slurm-plugins/README.md, simulate policies in docs/simulate.md. A table sits between
`<!-- generated: NAME ... -->` and `<!-- end: NAME -->`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def export_formats_table() -> str:
    from gpupool.fabric.export import EXPORT_FORMATS

    rows = [_row("format", "writes", "reads the compiled fabric"), _row("---", "---", "---")]
    rows += [_row(f"`{f.name}`", f.what, "yes" if f.needs_compiled else "no") for f in EXPORT_FORMATS.values()]
    return "\n".join(rows)


def audit_checks_table() -> str:
    from gpupool.audit.checks import all_check_infos

    rows = [_row("check", "theme", "severity (at most)", "finding when"), _row("---", "---", "---", "---")]
    rows += [_row(f"`{c.id}`", c.theme, c.severity, c.what) for c in all_check_infos()]
    return "\n".join(rows)


def node_checks_table() -> str:
    from gpupool.node.checks import node_checks

    rows = [_row("check", "default", "finding when"), _row("---", "---", "---")]
    rows += [_row(f"`{c.name}`", c.severity + ("" if c.enabled else ", **off**"), c.what)
             for c in node_checks().values()]
    return "\n".join(rows)


def simulate_policies_table() -> str:
    from gpupool.simulate.policies import policy_table

    return policy_table()


# (file relative to the repository root, table name) -> the table's text.
TABLES: dict[tuple[str, str], Callable[[], str]] = {
    ("docs/contract.md", "export-formats"): export_formats_table,
    ("docs/contract.md", "audit-checks"): audit_checks_table,
    ("slurm-plugins/README.md", "node-checks"): node_checks_table,
    ("docs/simulate.md", "simulate-policies"): simulate_policies_table,
}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {re.escape(name)} [^\n]*-->\n)(.*?)(<!-- end: {re.escape(name)} -->)", re.S)


def render(text: str, name: str, table: str) -> str:
    """`text` with table `name` replaced; a file without the markers is an error (nothing to keep true)."""
    pattern = _block(name)
    if not pattern.search(text):
        raise ValueError(f"no '<!-- generated: {name} ... -->' ... '<!-- end: {name} -->' block")
    return pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(3), text, count=1)


def generated_files(repo: Path) -> dict[str, str]:
    """Every file holding a generated table, as it should read."""
    texts: dict[str, str] = {}
    for (name, table_name), make in TABLES.items():
        current = texts.get(name) or (repo / name).read_text(encoding="utf-8")
        texts[name] = render(current, table_name, make())
    return texts


def write_tables(repo: Path) -> list[str]:
    """Rewrite the generated tables in place; returns the files that changed."""
    changed = []
    for name, text in generated_files(repo).items():
        path = repo / name
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed
