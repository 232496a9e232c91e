"""Rewrite the rule shapes that regopy 1.5.2 evaluates differently from OPA, before compiling.

OPA's compiler itself binds the dynamic terms of an expression to fresh variables before the
expression (``rewriteDynamics`` and ``expandExpr`` in OPA's ``ast/compile.go``): ``f(input.x)`` is
evaluated as ``__local0__ = input.x; f(__local0__)``. regopy does not, and two shapes then mean
something else (see DESIGN.md, "Facts about regopy's semantics"):

- an index variable not yet bound inside a call's arguments or an ``in`` operand
  (``count(input.disks[i].x) == 0``, ``lower(xs[_])``, ``x[i] in [...]``): OPA iterates over the
  variable, regopy finds nothing (or refuses ``_`` there). We bind the ref first, as OPA does;
- a negated expression whose call arguments (or ref indexes) may be undefined
  (``not f(input.missing)``, ``not d.x == 1``, ``not obj[input.k]``): in OPA the bindings happen
  outside the ``not``, so an undefined argument makes the body fail (OPA issues 1877, 4743);
  regopy makes the ``not`` true. We bind the arguments first, outside the ``not``, as OPA does.

Both rewrites are what OPA does to the same text, so they never change OPA's meaning; they only
make regopy see it. A rewrite stays on the line of the expression it rewrites, so the engine's
line numbers still point into the user's file. What we cannot rewrite faithfully is refused
(``RegoSyntaxError``), never compiled with another meaning.

This is a small tokenizer and expression parser, enough for Rego as written in Forklift's
policies and ours; it does not validate syntax (the engine does that).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.validation.regov0 import RegoSyntaxError, Rewrite

# -- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r]+)|(?P<nl>\n)|(?P<com>\#[^\n]*)
    |(?P<str>"(?:\\.|[^"\\\n])*"|`[^`]*`)
    |(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>:=|==|!=|<=|>=|[-+*/%<>=|&.,;:()\[\]{}!])""",
    re.VERBOSE,
)

KEYWORDS = frozenset(
    "package import default if else contains not some every in with as true false null".split()
)
_NOT_OPERAND_END = KEYWORDS - {"true", "false", "null"}


@dataclass(frozen=True)
class Tok:
    kind: str  # id num str op nl
    text: str
    start: int
    end: int


def tokenize(source: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            out.append(Tok("op", source[pos], pos, pos + 1))  # unknown: let the engine say
            pos += 1
            continue
        kind = m.lastgroup or ""
        if kind == "str" and source[pos] == "`":
            pass
        if kind not in ("ws", "com"):
            out.append(Tok(kind, m.group(), pos, m.end()))
        pos = m.end()
    return out


_OPEN = {"(": ")", "[": "]", "{": "}"}


def _match(toks: list[Tok], i: int) -> int:
    """Index of the bracket closing toks[i], or len(toks)."""
    depth = 0
    for j in range(i, len(toks)):
        t = toks[j].text if toks[j].kind == "op" else ""
        if t in _OPEN:
            depth += 1
        elif t in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return j
    return len(toks)


# -- expression trees -------------------------------------------------------------------------


@dataclass
class Node:
    kind: str  # lit var ref call infix unary array set object compr paren
    start: int  # char offsets into the source
    end: int
    name: str = ""  # var name, call name, operator
    kids: list[Node] = field(default_factory=list)  # ref: head then bracket indexes
    idx: list[bool] = field(default_factory=list)  # ref: which kids are bracket indexes


# lowest first, as OPA's parser nests them
_PREC = [
    (":=", "="),
    ("in",),
    ("==", "!=", "<", "<=", ">", ">="),
    ("|",),
    ("&",),
    ("+", "-"),
    ("*", "/", "%"),
]


class _Parser:
    def __init__(self, toks: list[Tok], lo: int, hi: int, bodies: list[tuple[int, int]]) -> None:
        self.t, self.i, self.hi = toks, lo, hi
        self.bodies = bodies  # nested bodies found (comprehensions): (lo, hi) token ranges

    def peek(self) -> Tok | None:
        return self.t[self.i] if self.i < self.hi else None

    def op(self, *texts: str) -> bool:
        p = self.peek()
        return p is not None and p.kind in ("op", "id") and p.text in texts

    def expr(self, level: int = 0) -> Node:
        if level == len(_PREC):
            return self.unary()
        left = self.expr(level + 1)
        while self.op(*_PREC[level]):
            opname = self.t[self.i].text
            if opname == "in" and level != 1:
                break
            self.i += 1
            right = self.expr(level + 1)
            left = Node("infix", left.start, right.end, opname, [left, right])
        return left

    def unary(self) -> Node:
        p = self.peek()
        if p is not None and p.kind == "op" and p.text == "-":
            self.i += 1
            inner = self.unary()
            return Node("unary", p.start, inner.end, "-", [inner])
        return self.postfix(self.primary())

    def primary(self) -> Node:
        p = self.peek()
        if p is None:
            raise _Unparsed
        if p.kind in ("str", "num") or p.text in ("true", "false", "null"):
            self.i += 1
            return Node("lit", p.start, p.end, p.text)
        if p.kind == "id":
            self.i += 1
            name, end = p.text, p.end
            # a dotted call name: regex.match(...), data.lib.f(...)
            j = self.i
            while (
                j + 1 < self.hi
                and self.t[j].text == "."
                and self.t[j + 1].kind == "id"
                and self.t[j].start == end
            ):
                j += 2
                end = self.t[j - 1].end
            if j < self.hi and self.t[j].text == "(":
                dotted = "".join(x.text for x in self.t[self.i - 1 : j])
                self.i = j
                args, close = self.seq(")")
                return Node("call", p.start, close, dotted, args)
            return Node("var", p.start, p.end, name)
        if p.text == "(":
            close = _match(self.t, self.i)
            inner = _Parser(self.t, self.i + 1, close, self.bodies).whole()
            self.i = close + 1
            return Node("paren", p.start, self.t[close].end, "", [inner])
        if p.text in ("[", "{"):
            close = _match(self.t, self.i)
            bar = self._top_bar(self.i + 1, close)
            start, end = p.start, self.t[min(close, len(self.t) - 1)].end
            if bar is not None:
                self.bodies.append((bar + 1, close))
                self.i = close + 1
                return Node("compr", start, end)
            kind = "array" if p.text == "[" else "set"
            items: list[Node] = []
            sub = _Parser(self.t, self.i + 1, close, self.bodies)
            while sub.peek() is not None:
                while sub.op(",") or (sub.peek() is not None and sub.peek().kind == "nl"):
                    sub.i += 1
                if sub.peek() is None:
                    break
                items.append(sub.expr(2))
                if sub.op(":"):
                    kind = "object"
                    sub.i += 1
                    while sub.peek() is not None and sub.peek().kind == "nl":
                        sub.i += 1
                    items.append(sub.expr(2))
                while sub.peek() is not None and sub.peek().kind == "nl":
                    sub.i += 1
                if sub.peek() is not None and not sub.op(","):
                    raise _Unparsed
            self.i = close + 1
            return Node(kind, start, end, "", items)
        raise _Unparsed

    def _top_bar(self, lo: int, hi: int) -> int | None:
        depth = 0
        for j in range(lo, hi):
            t = self.t[j]
            if t.kind != "op":
                continue
            if t.text in _OPEN:
                depth += 1
            elif t.text in (")", "]", "}"):
                depth -= 1
            elif t.text == "|" and depth == 0:
                return j
        return None

    def seq(self, closer: str) -> tuple[list[Node], int]:
        """Comma-separated expressions from the opening bracket at self.i; returns the end."""
        close = _match(self.t, self.i)
        sub = _Parser(self.t, self.i + 1, close, self.bodies)
        items = []
        while sub.peek() is not None:
            while sub.op(",") or (sub.peek() is not None and sub.peek().kind == "nl"):
                sub.i += 1
            if sub.peek() is None:
                break
            items.append(sub.expr(1))
            while sub.peek() is not None and sub.peek().kind == "nl":
                sub.i += 1
            if sub.peek() is not None and not sub.op(","):
                raise _Unparsed
        self.i = close + 1
        return items, self.t[min(close, len(self.t) - 1)].end

    def postfix(self, node: Node) -> Node:
        if node.kind not in ("var", "call", "array", "object", "set", "compr", "paren"):
            return node
        kids, idx = [node], [False]
        end = node.end
        while True:
            p = self.peek()
            if p is None or p.start != end:
                break  # a ref step is written right after the term it steps into
            if p.text == "." and self.i + 1 < self.hi and self.t[self.i + 1].kind == "id":
                self.i += 2
                end = self.t[self.i - 1].end
                continue
            if p.text == "[":
                close = _match(self.t, self.i)
                inner = _Parser(self.t, self.i + 1, close, self.bodies).whole()
                kids.append(inner)
                idx.append(True)
                self.i = close + 1
                end = self.t[close].end
                continue
            break
        if len(kids) == 1 and end == node.end:
            return node
        return Node("ref", node.start, end, "", kids, idx)

    def whole(self) -> Node:
        while self.peek() is not None and self.peek().kind == "nl":
            self.i += 1
        n = self.expr()
        while self.peek() is not None and self.peek().kind == "nl":
            self.i += 1
        if self.peek() is not None:
            raise _Unparsed
        return n


class _Unparsed(Exception):
    """An expression this parser does not know; left to the engine as written."""


# -- bodies -----------------------------------------------------------------------------------


@dataclass
class _Edit:
    start: int  # where the bindings go (start of the expression)
    end: int  # end of the expression
    bindings: list[str]
    replaced: list[tuple[int, int, str]]  # spans of the expression replaced by variables
    wrap: bool  # a one-line `if expr` body: add braces


def _vars_in(node: Node, out: set[str]) -> None:
    if node.kind == "var":
        out.add(node.name)
    if node.kind == "call":
        pass
    for k in node.kids:
        _vars_in(k, out)


class Rewriter:
    def __init__(self, source: str, globals_: Iterable[str], constants: Iterable[str]) -> None:
        self.src = source
        self.toks = [t for t in tokenize(source)]
        self.globals = set(globals_) | {"input", "data"}
        self.constants = constant_names(source) | set(constants) | {"input"}
        self.edits: list[_Edit] = []
        self.counter = 0

    def line(self, pos: int) -> int:
        return self.src.count("\n", 0, pos) + 1

    def fresh(self) -> str:
        self.counter += 1
        return f"__opa{self.counter}"

    # top level: find rule bodies
    def run(self) -> None:
        toks, i, n = self.toks, 0, len(self.toks)
        head_start = 0
        while i < n:
            t = toks[i]
            if t.kind == "nl":
                i += 1
                head_start = i
                continue
            if t.kind == "op" and t.text == "(":
                i = _match(toks, i) + 1
                continue
            if t.kind == "op" and t.text == "[":
                i = self._top_term(i)
                continue
            if t.text == "if" and t.kind == "id":
                args = self._head_args(head_start, i)
                if i + 1 < n and toks[i + 1].text == "{":
                    close = _match(toks, i + 1)
                    self.body(i + 2, close, set(args), wrap=False)
                    i = close + 1
                else:
                    j = i + 1
                    while j < n and toks[j].kind != "nl":
                        if toks[j].text in _OPEN:
                            j = _match(toks, j)
                        j += 1
                    self.body(i + 1, j, set(args), wrap=True)
                    i = j
                continue
            if t.text == "{":
                close = _match(toks, i)
                prev = toks[i - 1] if i > 0 else None
                is_body = prev is not None and (
                    prev.kind in ("str", "num")
                    or (prev.kind == "id" and prev.text not in _NOT_OPERAND_END)
                    or prev.text in (")", "]", "}")
                    or prev.text == "else"
                )
                if is_body:
                    self.body(i + 1, close, set(self._head_args(head_start, i)), wrap=False)
                    i = close + 1
                else:
                    i = self._top_term(i)
                continue
            i += 1

    def _top_term(self, i: int) -> int:
        """A literal in a rule head or value: rewrite the bodies of comprehensions inside it."""
        close = _match(self.toks, i)
        nested: list[tuple[int, int]] = []
        try:
            _Parser(self.toks, i, close + 1, nested).primary()
        except _Unparsed:
            return close + 1
        for lo, hi in nested:
            self.body(lo, hi, set(), wrap=False)
        return close + 1

    def _head_args(self, lo: int, hi: int) -> list[str]:
        """The parameters of a function head ``f(a, b) ... if``: bound in its body."""
        toks = self.toks
        if lo + 1 < hi and toks[lo].kind == "id" and toks[lo + 1].text == "(":
            close = _match(toks, lo + 1)
            return [t.text for t in toks[lo + 2 : close] if t.kind == "id"]
        return []

    def _split(self, lo: int, hi: int) -> list[tuple[int, int]]:
        exprs, start, j = [], lo, lo
        toks = self.toks
        while j < hi:
            t = toks[j]
            if t.kind == "op" and t.text in _OPEN:
                j = _match(toks, j) + 1
                continue
            if t.kind == "nl" or t.text == ";":
                if start < j:
                    exprs.append((start, j))
                start = j + 1
            j += 1
        if start < hi:
            exprs.append((start, hi))
        return exprs

    def body(self, lo: int, hi: int, bound: set[str], wrap: bool) -> None:
        bound = set(bound)
        for s, e in self._split(lo, hi):
            self.expression(s, e, bound, wrap)

    def expression(self, lo: int, hi: int, bound: set[str], wrap: bool) -> None:
        toks = self.toks
        first = toks[lo]
        if first.text == "some" and first.kind == "id":
            names, j = [], lo + 1
            while j < hi and toks[j].text != "in":
                if toks[j].kind == "id":
                    names.append(toks[j].text)
                j += 1
            if j < hi:  # some x in xs: the domain is an expression, x is bound
                self._walk_plain(j + 1, hi, bound)
                bound.update(names)
            return
        if first.text == "every" and first.kind == "id":
            j, names = lo + 1, []
            while j < hi and toks[j].text != "in":
                if toks[j].kind == "id":
                    names.append(toks[j].text)
                j += 1
            k = j
            while k < hi and toks[k].text != "{":
                k += 1
            if k < hi:
                close = _match(toks, k)
                self._walk_plain(j + 1, k, bound)
                self.body(k + 1, close, bound | set(names), wrap=False)
            return
        negated = first.text == "not" and first.kind == "id"
        s = lo + 1 if negated else lo
        with_at = next((j for j in range(s, hi) if toks[j].text == "with"), None)
        end_at = with_at if with_at is not None else hi
        nested: list[tuple[int, int]] = []
        try:
            node = _Parser(toks, s, end_at, nested).whole()
        except (_Unparsed, IndexError):  # not Rego this parser knows: left to the engine
            return
        names: set[str] = set()
        _vars_in(node, names)
        bindings: list[str] = []
        replaced: list[tuple[int, int, str]] = []
        if negated:
            self._negated(node, bound, bindings, replaced, first)
        else:
            self._unbound(node, bound, bindings, replaced, in_call=False)
        for blo, bhi in nested:  # comprehension bodies see the variables bound so far
            self.body(blo, bhi, bound | (set() if negated else names), wrap=False)
        if bindings:
            if with_at is not None:
                raise RegoSyntaxError(
                    self.line(first.start),
                    "an expression with `with` needs its arguments bound first (regopy reads "
                    "it differently from OPA otherwise); bind them in the lines before it",
                )
            self.edits.append(_Edit(first.start, toks[end_at - 1].end, bindings, replaced, wrap))
        if not negated:
            bound.update(names)

    def _walk_plain(self, lo: int, hi: int, bound: set[str]) -> None:
        """Comprehensions inside a some/every domain still get their bodies rewritten."""
        nested: list[tuple[int, int]] = []
        try:
            _Parser(self.toks, lo, hi, nested).whole()
        except _Unparsed:
            return
        for blo, bhi in nested:
            self.body(blo, bhi, bound, wrap=False)

    # shape 1: refs with an unbound index variable inside call arguments or `in` operands
    def _free_index(self, node: Node, bound: set[str]) -> bool:
        for k, is_idx in zip(node.kids, node.idx, strict=True):
            if (
                is_idx
                and k.kind == "var"
                and (k.name == "_" or (k.name not in bound and k.name not in self.globals))
            ):
                return True
        return False

    def _unbound(
        self,
        node: Node,
        bound: set[str],
        bindings: list[str],
        replaced: list[tuple[int, int, str]],
        in_call: bool,
    ) -> None:
        if node.kind == "compr":
            return
        if node.kind == "ref" and in_call and self._free_index(node, bound):
            inner: list[tuple[int, int, str]] = []
            var = self.fresh()
            bindings.append(f"{var} := {self._text(node, inner)}")
            replaced.append((node.start, node.end, var))
            return
        call = node.kind == "call" or (node.kind == "infix" and node.name == "in")
        for k in node.kids:
            self._unbound(k, bound, bindings, replaced, in_call or call)

    # shape 2: a negated expression's dynamic terms, bound outside the `not` as OPA does
    def _negated(
        self,
        node: Node,
        bound: set[str],
        bindings: list[str],
        replaced: list[tuple[int, int, str]],
        first: Tok,
    ) -> None:
        if node.kind == "paren":
            node = node.kids[0]
        self._check_safe(node, bound, first)
        if node.kind == "infix" and node.name in ("=", ":=", "=="):
            # OPA turns `==` into unification (RewriteEquals) before binding dynamic terms, and
            # unification keeps a ref operand in place: only its indexes and nested calls move
            for side in node.kids:
                if side.kind == "ref":
                    self._ref_indexes(side, bound, bindings, replaced, first)
                elif side.kind not in ("var", "lit"):
                    self._one(side, bound, bindings, replaced, first)
            return
        if node.kind == "ref":
            self._ref_indexes(node, bound, bindings, replaced, first)
            return
        if node.kind in ("call", "infix", "unary"):
            for k in node.kids:
                self._one(k, bound, bindings, replaced, first)

    def _ref_indexes(self, ref, bound, bindings, replaced, first) -> None:  # noqa: ANN001
        for k, is_idx in zip(ref.kids, ref.idx, strict=True):
            if is_idx:
                self._one(k, bound, bindings, replaced, first)

    def _check_safe(self, node: Node, bound: set[str], first: Tok) -> None:
        """A variable bound nowhere else inside `not` is unsafe and OPA rejects the rule;
        one inside a nested call is safe, since OPA moves the call out first (expandExpr)."""

        def visit(n: Node, top: bool) -> None:
            if n.kind == "compr" or (not top and n.kind in ("call", "infix", "unary")):
                return
            if n.kind == "var" and (
                n.name == "_" or (n.name not in bound and n.name not in self.globals)
            ):
                raise RegoSyntaxError(
                    self.line(first.start),
                    f"`{n.name}` inside `not` is bound nowhere else: OPA rejects the rule as "
                    "unsafe (bind the value before the `not`, or negate a helper rule that "
                    "iterates)",
                )
            for k in n.kids:
                visit(k, top and n.kind == "paren")

        visit(node, True)

    def _one(self, node: Node, bound, bindings, replaced, first) -> None:  # noqa: ANN001
        """OPA's rewriteDynamicsOne (plus expandExpr's nested calls): bind refs and calls."""
        if node.kind in ("lit", "compr"):
            if node.kind == "compr":
                self._bind(node, bindings, replaced)
            return
        if node.kind == "var":
            if node.name not in bound and node.name not in self.constants | {"_"}:
                self._bind(node, bindings, replaced)  # a rule of the package: may be undefined
            return
        if node.kind == "paren":
            self._one(node.kids[0], bound, bindings, replaced, first)
            return
        if node.kind in ("array", "set", "object"):
            for k in node.kids:
                self._one(k, bound, bindings, replaced, first)
            return
        if node.kind == "ref":
            for k, is_idx in zip(node.kids, node.idx, strict=True):
                if is_idx:
                    self._one(k, bound, bindings, replaced, first)
            self._bind(node, bindings, replaced)
            return
        if node.kind in ("call", "infix", "unary"):
            for k in node.kids:
                self._one(k, bound, bindings, replaced, first)
            self._bind(node, bindings, replaced)

    def _bind(self, node: Node, bindings: list[str], replaced: list[tuple[int, int, str]]) -> None:
        var = self.fresh()
        bindings.append(f"{var} := {self._text(node, replaced)}")
        replaced[:] = [r for r in replaced if not (node.start <= r[0] and r[1] <= node.end)]
        replaced.append((node.start, node.end, var))

    def _text(self, node: Node, replaced: list[tuple[int, int, str]]) -> str:
        return self._render(node.start, node.end, replaced)

    def _render(self, start: int, end: int, replaced: list[tuple[int, int, str]]) -> str:
        """The text of [start, end) on one line: replaced spans as their variables, line
        breaks and comments between tokens as one space, everything else as written."""
        out: list[str] = []
        spans = sorted(r for r in replaced if start <= r[0] and r[1] <= end)
        prev_end: int | None = None
        for t in self.toks:
            if t.start < start or t.end > end or t.kind == "nl":
                continue
            hit = next((r for r in spans if r[0] <= t.start < r[1]), None)
            if hit is not None and t.start != hit[0]:
                continue
            if prev_end is not None:
                gap = self.src[prev_end : t.start]
                out.append(" " if ("\n" in gap or "#" in gap) else gap)
            if hit is not None:
                out.append(hit[2])
                prev_end = hit[1]
                continue
            if t.kind == "str" and "\n" in t.text:
                raise RegoSyntaxError(
                    self.line(t.start),
                    "a raw string over several lines in an argument that must be bound first "
                    "(regopy reads the expression differently from OPA otherwise); bind it to a "
                    "variable in the line before",
                )
            out.append(t.text)
            prev_end = t.end
        return "".join(out)

    def result(self) -> tuple[str, list[Rewrite]]:
        out, pos, rewrites = [], 0, []
        for e in sorted(self.edits, key=lambda e: e.start):
            before = self.src[e.start : e.end]
            # keep line breaks inside the expression: line numbers stay true
            expr = self._render_keep_lines(e.start, e.end, e.replaced)
            new = "; ".join(e.bindings) + "; " + expr
            if e.wrap:
                new = "{ " + new + " }"
            out.append(self.src[pos : e.start])
            out.append(new)
            pos = e.end
            rewrites.append(
                Rewrite(
                    self.line(e.start),
                    " ".join(before.split()),
                    " ".join(new.split()),
                    "opa",
                )
            )
        out.append(self.src[pos:])
        return "".join(out), rewrites

    def _render_keep_lines(self, start: int, end: int, replaced) -> str:  # noqa: ANN001
        out, pos = [], start
        for a, b, var in sorted(r for r in replaced if start <= r[0] and r[1] <= end):
            if a < pos:
                continue
            out.append(self.src[pos:a])
            out.append(var + "\n" * self.src.count("\n", a, b))
            pos = b
        out.append(self.src[pos:end])
        return "".join(out)


def rule_names(source: str) -> set[str]:
    """Names of the rules and functions a module defines (its top-level heads)."""
    names: set[str] = set()
    toks = tokenize(source)
    at_line_start, depth = True, 0
    for t in toks:
        if t.kind == "nl":
            at_line_start = depth == 0
            continue
        if at_line_start and depth == 0 and t.kind == "id" and t.text not in KEYWORDS:
            names.add(t.text)
        if t.kind == "id" and t.text == "default":
            at_line_start = True
            continue
        if t.kind == "op" and t.text in _OPEN:
            depth += 1
        elif t.kind == "op" and t.text in (")", "]", "}"):
            depth = max(0, depth - 1)
        at_line_start = False
    return names


def constant_names(source: str) -> set[str]:
    """Rules whose value is a literal of literals (``kept := {"a", "b"}``): always defined, so
    binding them before a ``not`` would change nothing."""
    toks = tokenize(source)
    out: set[str] = set()
    i, n = 0, len(toks)
    while i < n:
        start = i
        depth = 0
        while i < n and not (toks[i].kind == "nl" and depth == 0):
            t = toks[i]
            if t.kind == "op" and t.text in _OPEN:
                depth += 1
            elif t.kind == "op" and t.text in (")", "]", "}"):
                depth -= 1
            i += 1
        stmt = toks[start:i]
        i += 1
        if stmt and stmt[0].text == "default":
            stmt = stmt[1:]
        if len(stmt) < 3 or stmt[0].kind != "id" or stmt[1].text not in (":=", "="):
            continue
        value = stmt[2:]
        if all(
            t.kind in ("str", "num", "nl")
            or (t.kind == "op" and t.text in "[]{},:-")
            or t.text in ("true", "false", "null")
            for t in value
        ):
            out.add(stmt[0].text)
    return out


def rewrite(
    source: str, globals_: Iterable[str] = (), constants: Iterable[str] = ()
) -> tuple[str, list[Rewrite]]:
    """``source`` with the shapes regopy misreads written as OPA itself evaluates them.

    ``globals_`` are the names of the package's rules (across all its files): a name that is not
    a rule and not bound yet is an index variable. ``constants`` are rules always defined.
    Raises RegoSyntaxError for a shape that cannot be rewritten faithfully.
    """
    rw = Rewriter(source, set(globals_) | rule_names(source), constants)
    try:
        rw.run()
    except IndexError:
        # unbalanced brackets or quotes: the engine refuses the file and says where
        return source, []
    return rw.result()


REQUIRED_CONCERN_KEYS = ("category", "label", "assessment")


def _object_keys(toks: list[Tok], i: int) -> tuple[set[str], bool]:
    """The literal keys of the object literal opening at toks[i], and whether it is one."""
    close = _match(toks, i)
    keys: set[str] = set()
    depth, is_object = 0, False
    for j in range(i + 1, close):
        t = toks[j]
        if t.kind == "op" and t.text in _OPEN:
            depth += 1
        elif t.kind == "op" and t.text in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and t.text == ":" and j > i + 1:
            is_object = True
            key = toks[j - 1]
            if key.kind == "str":
                keys.add(key.text.strip('"`'))
    return keys, is_object or close == i + 1


def concern_shape_problems(source: str) -> list[tuple[int, str]]:
    """(line, why) for each ``concerns contains X`` whose X is, as written, not an object with
    the three fields a concern needs. Concerns built in ways this cannot follow are left to the
    check at evaluation time."""
    toks = tokenize(source)
    out: list[tuple[int, str]] = []
    n = len(toks)
    for i in range(n - 2):
        t = toks[i]
        at_line_start = i == 0 or toks[i - 1].kind == "nl"
        if not (at_line_start and t.text == "concerns" and toks[i + 1].text == "contains"):
            continue
        term = toks[i + 2]
        line = source.count("\n", 0, t.start) + 1
        keys: set[str] | None = None
        is_obj = True
        if term.text == "{":
            keys, is_obj = _object_keys(toks, i + 2)
        elif term.kind in ("str", "num"):
            is_obj = False
        elif term.kind == "id":
            # the variable's value, if the rule's body assigns it a literal
            j = i + 3
            while j < n and toks[j].text != "{":
                j += 1
            end = _match(toks, j) if j < n else n
            for k in range(j, end - 2):
                if toks[k].text == term.text and toks[k + 1].text in (":=", "="):
                    value = toks[k + 2]
                    if value.text == "{":
                        keys, is_obj = _object_keys(toks, k + 2)
                    elif value.kind in ("str", "num") or value.text == "[":
                        is_obj = False
                    break
        if not is_obj:
            out.append((line, "a concern must be an object, not a string, number or array"))
        elif keys is not None:
            missing = [k for k in REQUIRED_CONCERN_KEYS if k not in keys]
            if missing:
                out.append(
                    (
                        line,
                        'a concern must have "category", "label" and "assessment" '
                        f"(missing: {', '.join(missing)})",
                    )
                )
    return out
