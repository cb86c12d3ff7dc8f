#!/usr/bin/env python
"""Renders a results file of `benchmarks/results/` as Markdown.

    python benchmarks/render.py benchmarks/results/2026-11-28-full-run.json

A results file is one JSON object: `title`, `script`, `command`, `date`,
`commit`, `machine` (CPU, GPU, Python, OS, package versions, load
averages), `backends`, `method` (paragraphs: what is measured and how),
`tables` and `notes` (paragraphs of findings). Each table has `title`,
`columns`, `rows` (cells: numbers, lists of numbers or text) and
`after_note`, the number of notes that come before it. `raw`, where
present, holds the measurements as the child processes recorded them.
"""

import json
import sys


def _cell(value):
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    if value is None:
        return "—"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(table):
    columns = table["columns"]
    lines = [f"### {table['title']}", "",
             "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |"
              for row in table["rows"]]
    return "\n".join(lines)


def render(results, method=False):
    """Markdown of a results file's content (`method`: with its method)."""
    machine = results.get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in
                         machine.get("versions", {}).items())
    cpu = machine.get("cpu")
    if cpu and machine.get("cores"):
        cpu += (f", {machine['cores']} cores ({machine['usable_cores']} "
                f"usable), {machine['memory']} memory")
    facts = [("Date", results.get("date")), ("Commit", results.get("commit")),
             ("Command", results.get("command") and
              f"`{results['command']}`"),
             ("CPU", cpu), ("GPU", machine.get("gpu")),
             ("Python", machine.get("python")), ("OS", machine.get("os")),
             ("Versions", versions),
             ("Load average at start", machine.get("load_start")),
             ("Load average at the end", machine.get("load_end"))]
    parts = [f"## {results['title']}",
             "\n".join(f"- {k}: {v}" for k, v in facts if v)]
    if method and results.get("method"):
        parts += ["### Method"] + results["method"]
    notes = results.get("notes", [])
    done = 0
    for table in results.get("tables", []):
        parts += notes[done:table.get("after_note", done)] + [_table(table)]
        done = max(done, table.get("after_note", done))
    parts += notes[done:]
    return "\n\n".join(parts) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    method = "--method" in argv
    paths = [a for a in argv if a != "--method"]
    if not paths:
        print("usage: python benchmarks/render.py [--method] RESULTS.json "
              "...", file=sys.stderr)
        return 2
    for path in paths:
        with open(path, encoding="utf-8") as f:
            print(render(json.load(f), method=method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
