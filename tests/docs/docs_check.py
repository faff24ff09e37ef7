#!/usr/bin/env python3
"""Checks on the project's Markdown pages, for bats/docs.bats.

  docs_check.py links ROOT        every relative link and image in the pages
                                  resolves: the file exists and, for #anchor,
                                  the page has a heading with that GitHub slug
  docs_check.py commands ROOT CTL every `egress-fence-ctl SUB --flag ...` quoted
                                  in the pages (code blocks and code spans)
                                  names a subcommand and flags CTL's --help lists
  docs_check.py pages ROOT        the pages checked, one a line

Each problem is printed as "file:line: what"; the exit status is 1 when there
is any, 2 when the check could not run.
"""
import os
import re
import subprocess
import sys

FENCE = re.compile(r"^ {0,3}(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def pages(root):
    out = []
    for name in ("README.md", "CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md",
                 os.path.join("install", "helm", "egress-fence", "README.md")):
        out.append(name)
    for d, _, files in os.walk(os.path.join(root, "docs")):
        for f in files:
            if f.endswith(".md"):
                out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(set(out))


def split(text):
    """(prose lines, code block lines), each as (line number, text); prose
    keeps its line numbers so spans and links can be located."""
    prose, code = [], []
    in_code = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if in_code:
            if m and m.group(1) == in_code:
                in_code = None
            else:
                code.append((n, line))
            continue
        if m:
            in_code = m.group(1)
            continue
        prose.append((n, line))
    return prose, code


def slug(heading):
    """GitHub's anchor for a heading: markup removed, lower case, every
    character but letters, digits, spaces, '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text):
    seen = {}
    out = set()
    prose, _ = split(text)
    for _, line in prose:
        m = HEADING.match(line)
        if not m:
            continue
        s = slug(m.group(2))
        if s in seen:
            seen[s] += 1
            out.add(f"{s}-{seen[s]}")
        else:
            seen[s] = 0
            out.add(s)
    return out


def check_links(root):
    problems = []
    cache = {}

    def anchors_of(path):
        if path not in cache:
            with open(path, encoding="utf-8") as f:
                cache[path] = anchors(f.read())
        return cache[path]

    for page in pages(root):
        path = os.path.join(root, page)
        if not os.path.isfile(path):
            problems.append(f"{page}: the page is missing")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        prose, _ = split(text)
        for n, line in prose:
            line = SPAN.sub(lambda m: " " * len(m.group(0)), line)
            for m in LINK.finditer(line):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                file_part, _, anchor = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
                if not os.path.exists(dest):
                    problems.append(f"{page}:{n}: {target}: {os.path.relpath(dest, root)} does not exist")
                    continue
                if anchor:
                    if not dest.endswith(".md"):
                        problems.append(f"{page}:{n}: {target}: an anchor into a file that is not Markdown")
                    elif anchor not in anchors_of(dest):
                        problems.append(f"{page}:{n}: {target}: {os.path.relpath(dest, root)} has no heading "
                                        f"whose anchor is #{anchor}")
    return problems


def quoted_commands(text):
    """(line, command text) for every egress-fence-ctl invocation quoted in
    code: a code block line (with its backslash continuations), or a code span."""
    prose, code = split(text)
    out = []
    i = 0
    while i < len(code):
        n, line = code[i]
        while line.rstrip().endswith("\\") and i + 1 < len(code) and code[i + 1][0] == code[i][0] + 1:
            i += 1
            line = line.rstrip()[:-1] + " " + code[i][1]
        for m in re.finditer(r"(?:^|[\s/])egress-fence-ctl\s+(.*)", line):
            out.append((n, m.group(1)))
        i += 1
    # Code spans may cross line breaks inside a paragraph.
    joined = "\n".join(line for _, line in prose)
    for m in SPAN.finditer(joined):
        n = prose[joined.count("\n", 0, m.start())][0]
        span = m.group(1).replace("\n", " ")
        for c in re.finditer(r"(?:^|[\s/])egress-fence-ctl\s+(.*)", span):
            out.append((n, c.group(1)))
    return out


def help_of(ctl, *args):
    r = subprocess.run([ctl, *args, "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return r.stdout


def options(help_text):
    names = set()
    section = None
    for line in help_text.split("\n"):
        if re.match(r"^\S.*:$", line):
            section = line
            continue
        if section and section.startswith("Options") and re.match(r"^\s+-", line):
            first = line.strip().split("  ")[0].split(" ")[0]
            for name in first.split(","):
                names.add(name.split("=")[0])
    return names


def check_commands(root, ctl):
    top = help_of(ctl)
    if top is None:
        print(f"cannot run {ctl} --help", file=sys.stderr)
        sys.exit(2)
    subcommands = set()
    in_subs = False
    for line in top.split("\n"):
        if line.startswith("Subcommands:"):
            in_subs = True
            continue
        if in_subs and re.match(r"^\s+\S", line):
            subcommands.add(line.split()[0])
    if not subcommands:
        print(f"{ctl} --help lists no subcommands", file=sys.stderr)
        sys.exit(2)
    flags_of = {}
    problems = []
    count = 0
    for page in pages(root):
        with open(os.path.join(root, page), encoding="utf-8") as f:
            text = f.read()
        for n, command in quoted_commands(text):
            # The command ends at a comment, a pipe, a list operator or a
            # closing parenthesis of the surrounding shell.
            command = re.split(r"\s#|\s\|\s|&&|;|\)\s|\)$", command)[0]
            tokens = command.split()
            if not tokens or tokens[0].startswith("<") or tokens[0] in ("...",):
                continue
            sub = tokens[0]
            count += 1
            if sub not in subcommands:
                problems.append(f"{page}:{n}: egress-fence-ctl {command.strip()}: no subcommand {sub!r}")
                continue
            if sub not in flags_of:
                h = help_of(ctl, sub)
                flags_of[sub] = options(h) if h else set()
            for t in tokens[1:]:
                t = t.strip("[]()|,'\"")
                if not re.match(r"^--?[A-Za-z]", t):
                    continue
                name = t.split("=")[0]
                if name not in flags_of[sub]:
                    problems.append(f"{page}:{n}: egress-fence-ctl {command.strip()}: {sub} has no option {name}")
    if count == 0:
        problems.append("no egress-fence-ctl command quoted in any page (the extraction is broken)")
    return problems


def main(argv):
    if len(argv) >= 2 and argv[0] == "pages":
        print("\n".join(pages(argv[1])))
        return 0
    if len(argv) == 2 and argv[0] == "links":
        problems = check_links(argv[1])
    elif len(argv) == 3 and argv[0] == "commands":
        problems = check_commands(argv[1], argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
