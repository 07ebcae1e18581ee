#!/usr/bin/env python3
"""Shape of the code under src/: the largest files, the longest functions,
visibility counts, and import cycles between files.

    scripts/code-metrics.py [SRC_DIR]

Naive by design (no Rust parser): a function is `fn name` up to its matching
closing brace; an import is a `crate::…`/`super::…`/`self::…` path resolved
to the longest prefix that names a file. Good enough to compare two trees.
"""

import os
import re
import sys
from collections import defaultdict

SRC = sys.argv[1] if len(sys.argv) > 1 else "src"


def rust_files():
    for root, _dirs, files in os.walk(SRC):
        for f in files:
            if f.endswith(".rs"):
                yield os.path.join(root, f)


def module_of(path):
    """src/a/b.rs -> ['a','b']; src/a/mod.rs -> ['a']; src/lib.rs -> []."""
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def file_of(parts, index):
    """The longest prefix of `parts` that names a file."""
    for n in range(len(parts), -1, -1):
        key = tuple(parts[:n])
        if key in index:
            return index[key]
    return None


def strip_tests(text):
    """Drop `#[cfg(test)] mod … { … }` blocks (their imports and length)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 0, m.end() - 1
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        i = j + 1
    out.append(text[i:])
    return "".join(out)


def functions(path, text):
    lines = text.split("\n")
    found = []
    for i, line in enumerate(lines):
        m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)", line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            code = re.sub(r"//.*", "", lines[j])
            code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
            code = re.sub(r"'(\\.|[^'\\])'", "''", code)
            if not started and ";" in code and "{" not in code:
                break
            depth += code.count("{") - code.count("}")
            if "{" in code:
                started = True
            if started and depth <= 0:
                found.append((j - i + 1, f"{path}:{i + 1} {m.group(6)}"))
                break
    return found


def main():
    files = sorted(rust_files())
    index = {tuple(module_of(f)): f for f in files}
    sizes, funcs = [], []
    vis = defaultdict(int)
    edges = defaultdict(set)
    for f in files:
        text = open(f, encoding="utf-8").read()
        sizes.append((text.count("\n"), f))
        funcs.extend(functions(f, text))
        for line in text.split("\n"):
            s = line.strip()
            if s.startswith("pub mod "):
                vis["pub mod"] += 1
            elif re.match(r"pub\((crate|super|in [^)]*)\)", s):
                vis["pub(crate/super/in)"] += 1
            elif re.match(r"pub (async |const |unsafe )*(fn|struct|enum|trait|type|const|static|use|macro)\b", s):
                vis["pub item"] += 1
            elif re.match(r"pub \w+\s*:", s):
                vis["pub field"] += 1
        me = module_of(f)
        body = re.sub(r"//.*", "", strip_tests(text))
        for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", body):
            head, rest = m.group(1), m.group(2).split("::")[1:]
            if head == "crate":
                parts = rest
            else:
                base = me if os.path.basename(f) in ("mod.rs", "lib.rs") else me[:-1]
                if head == "self":
                    base = me
                parts = base + rest
                while parts and parts[0] == "super":
                    parts = parts[1:]
            target = file_of(parts, index)
            if target and target != f:
                edges[f].add(target)
        # `super::super::x` and `super::x` chains are approximated above.

    print("## 15 largest files (lines)")
    for n, f in sorted(sizes, reverse=True)[:15]:
        print(f"{n:6} {f}")
    print("\n## 15 longest functions (lines)")
    for n, f in sorted(funcs, reverse=True)[:15]:
        print(f"{n:6} {f}")
    print("\n## visibility (lines starting with)")
    for k in ("pub item", "pub field", "pub mod", "pub(crate/super/in)"):
        print(f"{vis[k]:6} {k}")
    print("\n## import cycles between two files (a uses b, b uses a)")
    pairs = sorted(
        {tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, ())}
    )
    # A parent module declaring a child (`mod x;`) is not an import.
    for a, b in pairs:
        print(f"  {a} <-> {b}")
    print(f"{len(pairs):6} pairs")
    print("\n## import cycles between two stages (top-level modules)")
    stage = lambda f: (module_of(f) or ["lib"])[0]
    st = defaultdict(set)
    for a in edges:
        for b in edges[a]:
            if stage(a) != stage(b):
                st[stage(a)].add(stage(b))
    spairs = sorted({tuple(sorted((a, b))) for a in st for b in st[a] if a in st.get(b, ())})
    for a, b in spairs:
        print(f"  {a} <-> {b}")
    print(f"{len(spairs):6} pairs")
    print(f"\n{len(files):6} files, {sum(n for n, _ in sizes)} lines")


if __name__ == "__main__":
    main()
