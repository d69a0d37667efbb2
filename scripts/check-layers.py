#!/usr/bin/env python3
"""Fails when a module reaches across the layers of DESIGN.md.

- The pure core (model, promql, rules, registry, resources, config, object_names) does no IO:
  no runtime, HTTP, Kubernetes, logging or flag crates, no files, sockets or clock reads, and no
  edge modules.
- The providers and the API reach Prometheus and the cluster only through the providers' ports.
- explain and simulate do not use the API layer.
- telemetry and the clock are leaves; the request vocabulary uses no provider service.

Test modules (`#[cfg(test)] mod tests`, and `tests.rs` files) and comments are not checked.
Usage: check-layers.py [SRC_DIR]   (default: src beside this script)
"""

import pathlib
import re
import sys

CORE = ["model.rs", "promql", "rules", "registry.rs", "resources.rs", "config", "object_names.rs"]
IO = (
    r"\b(tokio|actix_web|actix_rt|actix_tls|reqwest|hyper|kube|k8s_openapi|notify|prometheus_http_query|tracing|clap)::"
    r"|\bstd::(fs|net|process)\b|\bstd::\{[^}]*\b(fs|net|process)\b"
    r"|\bSystemTime\b|\bInstant::now\b|\bunix_now\b"
)
EDGE_NAMES = "prometheus|cluster|api|server|provider|auth|app|cli|clock|telemetry|reload|explain|simulate"
EDGES = rf"\bcrate::({EDGE_NAMES})\b|\bcrate::\{{[^}}]*\b({EDGE_NAMES})\b"

RULES = [
    (CORE, IO, "the pure core does no IO (runtime, HTTP, Kubernetes, files, sockets, clock)"),
    (CORE, EDGES, "the pure core does not depend on the edges"),
    (["provider", "api"], r"\bcrate::(prometheus|cluster)\b|\bcrate::\{[^}]*\b(prometheus|cluster)\b",
     "providers and the API reach Prometheus and the cluster only through the provider ports"),
    (["explain", "simulate"], r"\bcrate::api\b|\bcrate::\{[^}]*\bapi\b", "explain and simulate do not use the API layer"),
    (["telemetry.rs", "clock.rs"], EDGES.replace("|clock|", "|"), "telemetry and the clock are leaves: they use the core (and the clock) only"),
    (["provider/request.rs"], r"\b(crate::provider|super)::(custom|external|plan|resource)\b",
     "the request vocabulary and its parser use no provider service (the services and the planner use them)"),
]


def files_under(src, names):
    for name in names:
        path = src / name
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.rs") if p.name != "tests.rs")
        elif path.exists():
            yield path


def checked_lines(path):
    """(line number, code) pairs, comments and test modules dropped; a `use` spanning lines
    comes as one line."""
    lines = path.read_text().split("\n")
    pending = None
    test_depth = None  # brace depth while inside `#[cfg(test)] mod tests { … }`
    for number, line in enumerate(lines, 1):
        if test_depth is not None:
            test_depth += line.count("{") - line.count("}")
            if test_depth <= 0 and "}" in line:
                test_depth = None
            continue
        if (
            line.strip() == "#[cfg(test)]"
            and number < len(lines)
            and re.match(r"\s*mod tests\s*\{", lines[number])
        ):
            test_depth = 0
            continue
        code = line.split("//", 1)[0]
        if pending is not None:
            pending = (pending[0], pending[1] + " " + code.strip())
            if ";" in code:
                yield pending
                pending = None
            continue
        if re.match(r"\s*(pub(\([^)]*\))?\s+)?use\b", code) and ";" not in code:
            pending = (number, code.strip())
            continue
        if code.strip():
            yield number, code


def main():
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "src"
    problems = []
    for names, pattern, why in RULES:
        regex = re.compile(pattern)
        for path in files_under(src, names):
            for number, code in checked_lines(path):
                match = regex.search(code)
                if match:
                    problems.append(f"{path.relative_to(src.parent)}:{number}: `{match.group(0)}`: {why}")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} layering violation(s)", file=sys.stderr)
        return 1
    print("layers: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
