#!/usr/bin/env python3
"""Strict check of Prometheus text exposition format (as egress-fence-ctl metrics writes it).

Usage: promcheck.py FILE   (exit 0 and no output when sound; one line per problem otherwise)

Checked: every sample line matches the name/labels/value grammar; every comment is a
well-formed `# HELP NAME TEXT` or `# TYPE NAME TYPE`; exactly one TYPE per family and it
precedes the family's samples; one HELP per family; a family's samples are contiguous;
no series (name + label set) twice; no label name twice in one series; counter families
end in _total; values are numbers (counters: finite and >= 0).
"""
import math
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LNAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVALUE = r'"(?:[^"\\]|\\.)*"'
SAMPLE = re.compile(
    rf"^({NAME})(\{{{LNAME}={LVALUE}(?:,{LNAME}={LVALUE})*\}})? ([0-9.eE+-]+)$"
)
PAIR = re.compile(rf"({LNAME})=({LVALUE})")
HELP = re.compile(rf"^# HELP ({NAME}) (.+)$")
TYPE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def main(path):
    problems = []
    types, helps, seen_series = {}, {}, set()
    sampled, finished = set(), set()
    current = None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        problems.append("the last line has no newline")
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("#"):
            m = HELP.match(line)
            if m:
                if m.group(1) in helps:
                    problems.append(f"{where}: second HELP for {m.group(1)}")
                helps[m.group(1)] = n
                continue
            m = TYPE.match(line)
            if m:
                fam = m.group(1)
                if fam in types:
                    problems.append(f"{where}: second TYPE for {fam}")
                if fam in sampled:
                    problems.append(f"{where}: TYPE for {fam} after its samples")
                types[fam] = m.group(2)
                continue
            problems.append(f"{where}: a comment that is neither HELP nor TYPE")
            continue
        m = SAMPLE.match(line)
        if not m:
            problems.append(f"{where}: not a sample line")
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        if name not in types:
            problems.append(f"{where}: sample of {name} without a preceding TYPE")
        if name in finished:
            problems.append(f"{where}: samples of {name} are not contiguous")
        if current is not None and current != name:
            finished.add(current)
        current = name
        sampled.add(name)
        pairs = PAIR.findall(labels)
        names = [k for k, _ in pairs]
        if len(names) != len(set(names)):
            problems.append(f"{where}: a label name twice")
        key = (name, tuple(sorted(pairs)))
        if key in seen_series:
            problems.append(f"{where}: duplicate series")
        seen_series.add(key)
        try:
            v = float(value)
        except ValueError:
            problems.append(f"{where}: value {value} is not a number")
            continue
        if types.get(name) == "counter" and (math.isnan(v) or math.isinf(v) or v < 0):
            problems.append(f"{where}: counter value {value} is not a finite non-negative number")
    for fam, kind in types.items():
        if fam not in helps:
            problems.append(f"family {fam}: no HELP")
        if kind == "counter" and not fam.endswith("_total"):
            problems.append(f"family {fam}: a counter whose name does not end in _total")
    for fam in helps:
        if fam not in types:
            problems.append(f"family {fam}: HELP without TYPE")
    if not types:
        problems.append("no metric families at all")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
