#!/usr/bin/env python3
"""Finds bats statements that can fail without failing the test (issue 22).

bats runs a test body under `set -e`, and bash's errexit ignores two things
shellcheck does not report everywhere:
  - a statement that ends in an `a && b` list: when `a` fails, `b` is skipped,
    the list's status is non-zero, and the test goes on as if nothing happened;
  - a negated pipeline, `! cmd` (SC2314 only inside @test bodies): its status
    never stops the shell.
A statement is honest when its last pipeline is not negated and does not
follow `&&`: `a || fail "..."`, `! a || fail "..."`, `[ ... ] || fail` and
`run ! cmd` are. Checked: every statement of a @test body or of a function but
its last, whose status is the body's own (bats fails a test whose last
statement fails, a caller sees a function's). Conditions of if/while/until,
background jobs and command substitutions are not statements of the test.

Usage: scripts/bats-lint.py FILE...   (no output and exit 0 when clean; one
line per finding, `file:line: what`, and exit 1 otherwise)

An exception is marked on the statement's first line with a comment
`# bats-lint: allow (why)`; the reason is required.
"""

import re
import sys

OPS = {"&&", "||", "|", "|&", ";", ";;", ";&", ";;&", "&", "\n", "(", ")"}
# Words that end a compound list (when they are the first word of a command).
ENDERS = {"then", "elif", "else", "fi", "do", "done", "esac", "}"}


class Token:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind, text, line):
        self.kind = kind  # "word" or "op"
        self.text = text
        self.line = line

    def __repr__(self):
        return f"{self.kind}:{self.text!r}@{self.line}"


class Lexer:
    """Splits bash source into words and control operators. Quotes, $(...),
    ${...}, $((...)), backticks, <(...), arrays a=(...), [[ ... ]] and
    ((...)) are kept inside one word; comments and here-documents vanish."""

    def __init__(self, src):
        self.s = src
        self.i = 0
        self.line = 1
        self.tokens = []
        self.heredocs = []  # (delimiter, strip_tabs) waiting for the next newline

    def peek(self, k=0):
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def adv(self, n=1):
        for _ in range(n):
            if self.i < len(self.s):
                if self.s[self.i] == "\n":
                    self.line += 1
                self.i += 1

    def skip_single(self):
        self.adv()  # '
        while self.i < len(self.s) and self.peek() != "'":
            self.adv()
        self.adv()

    def skip_ansi(self):
        self.adv(2)  # $'
        while self.i < len(self.s) and self.peek() != "'":
            if self.peek() == "\\":
                self.adv()
            self.adv()
        self.adv()

    def skip_double(self):
        self.adv()  # "
        while self.i < len(self.s):
            c = self.peek()
            if c == "\\":
                self.adv(2)
            elif c == '"':
                self.adv()
                return
            elif c == "$":
                self.skip_dollar()
            elif c == "`":
                self.skip_backtick()
            else:
                self.adv()

    def skip_backtick(self):
        self.adv()
        while self.i < len(self.s) and self.peek() != "`":
            if self.peek() == "\\":
                self.adv()
            self.adv()
        self.adv()

    def skip_parens(self):
        """At '(': skips to the matching ')', quotes and comments respected."""
        depth = 0
        while self.i < len(self.s):
            c = self.peek()
            if c == "\\":
                self.adv(2)
                continue
            if c == "'":
                self.skip_single()
                continue
            if c == '"':
                self.skip_double()
                continue
            if c == "`":
                self.skip_backtick()
                continue
            if c == "$" and self.peek(1) in "({'":
                self.skip_dollar()
                continue
            if c == "#" and self.i > 0 and self.s[self.i - 1] in " \t\n(;":
                while self.i < len(self.s) and self.peek() != "\n":
                    self.adv()
                continue
            self.adv()
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return

    def skip_braces(self):
        """At '${': skips to the matching '}'."""
        self.adv(2)
        depth = 1
        while self.i < len(self.s) and depth:
            c = self.peek()
            if c == "\\":
                self.adv(2)
            elif c == "'":
                self.skip_single()
            elif c == '"':
                self.skip_double()
            elif c == "$" and self.peek(1) in "({":
                self.skip_dollar()
            else:
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                self.adv()

    def skip_dollar(self):
        nxt = self.peek(1)
        if nxt == "(":
            self.adv()  # $
            self.skip_parens()
        elif nxt == "{":
            self.skip_braces()
        elif nxt == "'":
            self.skip_ansi()
        else:
            self.adv()

    def read_heredoc_delim(self):
        """After '<<' (or '<<-'): reads the delimiter word, strips its quotes."""
        while self.peek() in " \t":
            self.adv()
        start = self.i
        while self.i < len(self.s) and self.peek() not in " \t\n;&|<>()":
            if self.peek() in "'\"":
                q = self.peek()
                self.adv()
                while self.i < len(self.s) and self.peek() != q:
                    self.adv()
            self.adv()
        return re.sub(r"[\"'\\]", "", self.s[start : self.i])

    def skip_heredoc_bodies(self):
        """At the start of a line after a line that opened here-documents."""
        for delim, strip in self.heredocs:
            while self.i < len(self.s):
                end = self.s.find("\n", self.i)
                end = len(self.s) if end < 0 else end
                body = self.s[self.i : end]
                self.adv(end - self.i + 1)
                if (body.lstrip("\t") if strip else body) == delim:
                    break
        self.heredocs = []

    def word(self):
        start_line = self.line
        start = self.i
        # (( arithmetic )) and [[ test ]] as whole commands: one word each.
        if self.s.startswith("((", self.i):
            self.skip_parens()
            return Token("word", self.s[start : self.i], start_line)
        if self.s.startswith("[[", self.i) and self.peek(2) in " \t\n":
            end = re.compile(r"[ \t\n]\]\](?=[ \t\n;&|)]|$)").search(self.s, self.i)
            stop = end.end() if end else len(self.s)
            self.adv(stop - self.i)
            return Token("word", self.s[start : self.i], start_line)
        if self.s.startswith("&>", self.i):
            self.adv(3 if self.peek(2) == ">" else 2)
            return Token("word", self.s[start : self.i], start_line)
        while self.i < len(self.s):
            c = self.peek()
            if c in " \t\n;&|":
                break
            if c in "()":
                # a=(...) a+=(...) <(...) >(...) and @(...) style globs belong to the word
                prev = self.s[self.i - 1] if self.i > start else ""
                if c == "(" and self.i > start and prev in "=<>@?*+!":
                    self.skip_parens()
                    continue
                break
            if c in "<>":
                if self.i > start and not self.s[start : self.i].isdigit():
                    break
                if self.peek(1) == "(":
                    self.adv()
                    self.skip_parens()
                    continue
                # a redirection operator: its own word
                if self.s.startswith("<<<", self.i):
                    self.adv(3)
                elif self.s.startswith("<<", self.i):
                    strip = self.peek(2) == "-"
                    self.adv(3 if strip else 2)
                    self.heredocs.append((self.read_heredoc_delim(), strip))
                    return Token("word", "<<", start_line)
                else:
                    while self.peek() in "<>&|" and self.peek():
                        self.adv()
                    if self.s[self.i - 1] == "&" and self.peek() in "-0123456789":
                        self.adv()
                return Token("word", self.s[start : self.i], start_line)
            if c == "\\":
                self.adv(2)
            elif c == "'":
                self.skip_single()
            elif c == '"':
                self.skip_double()
            elif c == "`":
                self.skip_backtick()
            elif c == "$":
                self.skip_dollar()
            else:
                self.adv()
        return Token("word", self.s[start : self.i], start_line)

    def run(self):
        at_word_start = True
        while self.i < len(self.s):
            c = self.peek()
            if c == "\\" and self.peek(1) == "\n":
                self.adv(2)
                continue
            if c in " \t":
                self.adv()
                at_word_start = True
                continue
            if c == "#" and at_word_start:
                while self.i < len(self.s) and self.peek() != "\n":
                    self.adv()
                continue
            if c == "\n":
                self.tokens.append(Token("op", "\n", self.line))
                self.adv()
                if self.heredocs:
                    self.skip_heredoc_bodies()
                at_word_start = True
                continue
            matched = None
            for op in (";;&", ";;", ";&", "&&", "||", "|&", "|", ";", "&", "(", ")"):
                if self.s.startswith(op, self.i):
                    matched = op
                    break
            if matched == "&" and self.peek(1) == ">":
                matched = None  # &> redirection
            if matched == "(" and self.s.startswith("((", self.i):
                matched = None  # (( arithmetic ))
            if matched:
                self.tokens.append(Token("op", matched, self.line))
                self.adv(len(matched))
                at_word_start = True
                continue
            self.tokens.append(self.word())
            at_word_start = False
        self.tokens.append(Token("op", "\n", self.line))
        return self.tokens


class Statement:
    __slots__ = ("line", "ops", "negated_last", "background", "context", "last")

    def __init__(self, line):
        self.line = line
        self.ops = []  # list operators between pipelines: "&&" / "||"
        self.negated_last = False
        self.background = False
        self.context = None  # "test", "function" or "condition"
        self.last = False  # last statement of a function body


class Parser:
    def __init__(self, tokens):
        self.t = tokens
        self.i = 0
        self.statements = []

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else Token("op", "EOF", -1)

    def next(self):
        tok = self.peek()
        self.i += 1
        return tok

    def is_word(self, text=None):
        tok = self.peek()
        return tok.kind == "word" and (text is None or tok.text == text)

    def is_op(self, text):
        tok = self.peek()
        return tok.kind == "op" and tok.text == text

    def skip_newlines(self):
        while self.is_op("\n") or self.is_op(";"):
            self.next()

    def compound_list(self, context, enders):
        """Statements until a word in `enders` (or an op in enders) is first in a command."""
        body = []
        while True:
            self.skip_newlines()
            tok = self.peek()
            if tok.text == "EOF" and tok.kind == "op":
                break
            if tok.kind == "word" and tok.text in enders:
                break
            if tok.kind == "op" and tok.text in enders:
                break
            st = self.and_or(context)
            body.append(st)
            if self.is_op("&"):
                st.background = True
                self.next()
            elif self.is_op(";") or self.is_op("\n"):
                self.next()
        return body

    def and_or(self, context):
        st = Statement(self.peek().line)
        st.context = context
        self.statements.append(st)
        while True:
            st.negated_last = self.pipeline(context)
            if self.is_op("&&") or self.is_op("||"):
                st.ops.append(self.next().text)
                while self.is_op("\n"):
                    self.next()
                continue
            return st

    def pipeline(self, context):
        negated = False
        while self.is_word("!"):
            self.next()
            negated = not negated
        if self.is_word("time"):
            self.next()
        while True:
            self.command(context)
            if self.is_op("|") or self.is_op("|&"):
                self.next()
                while self.is_op("\n"):
                    self.next()
                continue
            return negated

    def function_body(self, context):
        """After a function header: the body, with its last statement marked."""
        while self.is_op("\n"):
            self.next()
        if self.is_word("{"):
            self.next()
            body = self.compound_list(context, {"}"})
            if self.is_word("}"):
                self.next()
        elif self.is_op("("):
            self.next()
            body = self.compound_list(context, {")"})
            if self.is_op(")"):
                self.next()
        else:
            self.command(context)
            return
        if body:
            body[-1].last = True

    def command(self, context):
        tok = self.peek()
        if tok.kind == "op" and tok.text == "(":
            self.next()
            body = self.compound_list(context, {")"})
            if self.is_op(")"):
                self.next()
            # A subshell's status is its last statement's, and errexit sees it.
            if body:
                body[-1].last = True
            self.redirections()
            return
        if tok.kind != "word":
            return
        w = tok.text
        if w == "@test":
            self.next()
            while self.is_word() and not self.is_word("{"):
                self.next()
            self.function_body("test")
            return
        if w == "function":
            self.next()
            self.next()  # name
            if self.is_op("("):
                self.next()
                self.next()
            self.function_body("function")
            return
        if self.i + 2 < len(self.t) and self.t[self.i + 1].text == "(" and self.t[self.i + 2].text == ")":
            if self.t[self.i + 1].kind == "op" and re.fullmatch(r"[A-Za-z_][\w:.-]*", w):
                self.i += 3
                self.function_body("function")
                return
        if w == "{":
            self.next()
            self.compound_list(context, {"}"})
            if self.is_word("}"):
                self.next()
            self.redirections()
            return
        if w in ("if", "elif"):
            self.next()
            self.compound_list("condition", {"then"})
            self.next()  # then
            self.compound_list(context, {"elif", "else", "fi"})
            while self.is_word("elif"):
                self.next()
                self.compound_list("condition", {"then"})
                self.next()
                self.compound_list(context, {"elif", "else", "fi"})
            if self.is_word("else"):
                self.next()
                self.compound_list(context, {"fi"})
            self.next()  # fi
            self.redirections()
            return
        if w in ("while", "until"):
            self.next()
            self.compound_list("condition", {"do"})
            self.next()
            self.compound_list(context, {"done"})
            self.next()
            self.redirections()
            return
        if w in ("for", "select"):
            self.next()
            while not (self.is_word("do") or self.is_op("EOF")):
                self.next()
            self.next()
            self.compound_list(context, {"done"})
            self.next()
            self.redirections()
            return
        if w == "case":
            self.next()
            self.next()  # subject
            self.skip_newlines()
            if self.is_word("in"):
                self.next()
            while True:
                self.skip_newlines()
                if self.is_word("esac") or self.is_op("EOF"):
                    break
                if self.is_op("("):
                    self.next()
                while not self.is_op(")") and not self.is_op("EOF"):
                    self.next()  # the patterns
                self.next()
                self.compound_list(context, {";;", ";&", ";;&", "esac"})
                if self.peek().text in (";;", ";&", ";;&"):
                    self.next()
            self.next()  # esac
            self.redirections()
            return
        # A simple command: words up to a control operator.
        while self.peek().kind == "word":
            self.next()

    def redirections(self):
        while self.peek().kind == "word" and re.match(r"^\d*[<>]", self.peek().text):
            self.next()
            if self.peek().kind == "word":
                self.next()


def findings(path):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    lines = src.split("\n")
    parser = Parser(Lexer(src).run())
    parser.compound_list("top", set())
    out = []
    for st in parser.statements:
        if st.context not in ("test", "function") or st.background:
            continue
        if st.last:
            continue
        first = lines[st.line - 1] if 0 < st.line <= len(lines) else ""
        m = re.search(r"#\s*bats-lint:\s*allow\s*(\(.*\))?", first)
        if m:
            if not m.group(1) or len(m.group(1)) < 4:
                out.append(f"{path}:{st.line}: bats-lint allow without a reason in parentheses")
            continue
        where = "test" if st.context == "test" else "function"
        if st.ops and st.ops[-1] == "&&":
            out.append(
                f"{path}:{st.line}: an `a && b` statement in a {where} body: when a fails the test goes on"
                " (use `if a; then b; fi`, or `a || fail \"...\"; b`)"
            )
        elif st.negated_last:
            out.append(
                f"{path}:{st.line}: a bare `! cmd` statement in a {where} body never fails the test"
                " (use `run ! cmd`, or `! cmd || fail \"...\"`)"
            )
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    found = []
    for path in argv[1:]:
        found += findings(path)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
