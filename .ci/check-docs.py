#!/usr/bin/env python3
"""The repository's documentation speaks of the product, from inside the repository.

Fails when a Markdown link that is not a URL or an anchor points at a file that does not exist
or outside the repository, or when a tracked text file reads like a work log (sessions,
numbered fixes). The vendored crate is left out: it is upstream's text.
"""
import os
import re
import subprocess
import sys

LOG_WORDS = re.compile(
    r"\b((this|that|previous|next|last|earlier|later|first|second|third|[a-z]+th) session"
    r"|fix(es)? [0-9]+)\b",
    re.IGNORECASE,
)
SKIP = ("server/vendor/", "Cargo.lock", ".ci/check-docs.py")


def tracked(pattern=None):
    args = ["git", "ls-files"] + ([pattern] if pattern else [])
    return [f for f in subprocess.check_output(args, text=True).split() if not f.startswith(SKIP)]


def broken_links():
    for path in tracked("*.md"):
        text = open(path, encoding="utf-8").read()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target.split("#")[0]))
            if resolved.startswith("..") or not os.path.exists(resolved):
                yield f"{path}: link to {target} does not resolve inside the repository"


def work_log_lines():
    for path in tracked():
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue
        for number, line in enumerate(lines, 1):
            if LOG_WORDS.search(line):
                yield f"{path}:{number}: reads like a work log: {line.strip()[:100]}"


problems = list(broken_links()) + list(work_log_lines())
for problem in problems:
    print(problem, file=sys.stderr)
sys.exit(1 if problems else 0)
