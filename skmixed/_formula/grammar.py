"""Tokens and syntax trees of lme4/mgcv formulas: a tokenizer and a recursive-descent parser.

The right-hand side follows R's operator precedence (loosest first: ``|``, ``+ -``,
``* /``, ``:``, ``^``); the response and the arguments of functions are arithmetic with
Python's precedence (``-x ** 2`` is ``-(x ** 2)``)::

    formula  := expr '~' sum
    sum      := ['-'] product (('+' | '-') product)*
    product  := inter (('*' | '/') inter)*
    inter    := power (':' power)*
    power    := atom [('^' | '**') NUMBER]
    atom     := NAME | NUMBER | call | '(' sum [('|' | '||') sum] ')'
    call     := NAME '(' [arg (',' arg)*] ')'          arg := [NAME '='] expr
    expr     := term (('+' | '-') term)*
    term     := unary (('*' | '/') unary)*
    unary    := ('-' | '+') unary | pow
    pow      := primary [('**' | '^') unary]
    primary  := NAME | NUMBER | STRING | call | '(' expr ')'

A NAME is ``[A-Za-z_.][A-Za-z0-9_.]*`` — a dot is part of a name, as in R's
``Sepal.Length``, never attribute access — or any text in backticks (`` `my g` ``). A name
with a part starting with ``__`` (Python's special names) is refused unless in backticks.
Any other character (``[``, ``$``, ``@``, ``;``, …) is an error, and so is nesting
(parentheses, calls, signs, powers) deeper than 40 levels, which bounds the recursion;
chains of operators (``x + x + … + x``, ``a:b:…``) are read and walked in loops
(`chain`), so their length is not bounded. The parser only builds the tree; which
functions may be called, and where, is checked by `terms`.
"""

import math
import re
from dataclasses import dataclass, field

__all__ = ["FormulaError", "Num", "Str", "Name", "Call", "Unary", "BinOp", "Sum", "Random",
           "chain", "parse", "label"]


class FormulaError(ValueError):
    """A malformed formula; the message points at the offending token."""

    def __init__(self, formula, position, message):
        caret = " " * position + "^"
        super().__init__(f"{message}\n  {formula}\n  {caret}")
        self.position = position


# ------------------------------------------------------------------------------ nodes
# ``start``/``end``: the node's span in the formula; ``pos``: the token an error points at.
class _Spanned:
    @property
    def pos(self):
        return self.start


@dataclass(frozen=True)
class Num(_Spanned):
    value: float
    start: int
    end: int


@dataclass(frozen=True)
class Str(_Spanned):
    value: str
    start: int
    end: int


@dataclass(frozen=True)
class Name(_Spanned):
    name: str
    start: int
    end: int


@dataclass(frozen=True)
class Call(_Spanned):
    func: str
    args: tuple
    kwargs: tuple  # ((key, value node, key position), ...)
    start: int
    end: int


@dataclass(frozen=True)
class Unary(_Spanned):  # arithmetic negation
    operand: object
    start: int
    end: int


@dataclass(frozen=True)
class BinOp:  # arithmetic (+ - * / **) or, in a formula, its operators (+ - * / : ^)
    op: str
    left: object
    right: object
    pos: int
    start: int = field(init=False)  # stored, not walked: a chain x + x + ... is long
    end: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "start", self.left.start)
        object.__setattr__(self, "end", self.right.end)


def chain(node, ops):
    """A left-associative chain ``((a op b) op c) …`` of operators in ``ops``: its first
    operand and its `BinOp` links in order (each link's ``right`` is the next
    operand). Walkers loop over a chain rather than recurse down it, so its length is not
    bounded by Python's recursion limit (``I(x + x + … + x)``, ``a:b:…:z``)."""
    links = []
    while isinstance(node, BinOp) and node.op in ops:
        links.append(node)
        node = node.left
    return node, links[::-1]


@dataclass(frozen=True)
class Sum(_Spanned):  # a formula's terms joined by + and -: ((sign, node), ...)
    items: tuple
    start: int
    end: int


@dataclass(frozen=True)
class Random(_Spanned):  # (lhs | rhs) or (lhs || rhs)
    lhs: Sum
    rhs: Sum
    double: bool
    start: int
    end: int


# -------------------------------------------------------------------------- tokenizer
@dataclass(frozen=True)
class _Token:
    kind: str  # name, num, str, op, eof
    text: str
    pos: int
    value: object = None


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<quoted>`[^`]*`?)
  | (?P<str>"[^"]*"?|'[^']*'?)
  | (?P<op>\*\*|\|\||[~+\-*/^:|(),=])
""", re.X)
_ODD = {"[": "subscripts ('[') are not supported: a formula names columns",
        "]": "subscripts (']') are not supported: a formula names columns",
        "$": "'$' is not supported: name the column itself",
        "%": "'%' operators (%in%, %%) are not supported",
        "@": "'@' is not supported", ";": "';' is not supported: a formula is one expression"}


def _check_name(formula, name, pos):
    if name == "." or set(name) == {"."}:
        raise FormulaError(formula, pos, "'.' (all other columns) is not supported; list the "
                           "columns")
    offset = 0
    for part in name.split("."):
        if part.startswith("__"):
            raise FormulaError(formula, pos + offset, f"{part!r} is not allowed: names with a "
                               "part starting with '__' (Python's special names) are refused "
                               "('.' is part of a name, never attribute access); a column "
                               "with such a name is written in backticks")
        offset += len(part) + 1


def _tokenize(formula):
    tokens, i = [], 0
    while i < len(formula):
        m = _TOKEN.match(formula, i)
        if m is None:
            ch = formula[i]
            raise FormulaError(formula, i, _ODD.get(ch, f"unexpected character {ch!r}"))
        kind, text = m.lastgroup, m.group()
        if kind == "num":
            value = float(text) if any(c in text for c in ".eE") else int(text)
            if not math.isfinite(value):
                raise FormulaError(formula, i, f"the number {text} is too large")
            tokens.append(_Token("num", text, i, value))
        elif kind == "name":
            _check_name(formula, text, i)
            tokens.append(_Token("name", text, i, text))
        elif kind in ("quoted", "str"):
            if len(text) < 2 or text[-1] != text[0]:
                raise FormulaError(formula, i, f"unterminated {text[0]}: the closing "
                                   f"{text[0]} is missing")
            if kind == "quoted" and len(text) == 2:
                raise FormulaError(formula, i, "an empty name ``")
            tokens.append(_Token("name" if kind == "quoted" else "str", text, i, text[1:-1]))
        elif kind == "op":
            tokens.append(_Token("op", text, i))
        i = m.end()
    return tokens


def _check_parentheses(formula, tokens):
    depth = 0
    for t in tokens:
        if t.kind == "op" and t.text == "(":
            depth += 1
        elif t.kind == "op" and t.text == ")":
            depth -= 1
            if depth < 0:
                raise FormulaError(formula, t.pos, "unbalanced ')'")
    if depth:
        raise FormulaError(formula, len(formula), "unbalanced '(': a ')' is missing")


# ----------------------------------------------------------------------------- parser
_OPERAND_MISSING = ("+", "-", ")", ",", "|", "||", "~", "*", "/", ":", "^", "**", "=")


_MAX_DEPTH = 40  # nested parentheses, calls, signs and powers: a bound on the recursion


class _Parser:
    def __init__(self, formula, tokens, end):
        self.formula, self.tokens, self.i, self.end = formula, tokens, 0, end
        self.depth = 0

    def peek(self, k=0):
        j = self.i + k
        return self.tokens[j] if j < len(self.tokens) else _Token("eof", "", self.end)

    def at(self, *ops):
        t = self.peek()
        return t.kind == "op" and t.text in ops

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def nest(self, method, *args):
        """``method(*args)`` one level deeper: parentheses, calls, signs and powers."""
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail(self.peek(), f"the formula is nested more than {_MAX_DEPTH} levels deep")
        try:
            return method(*args)
        finally:
            self.depth -= 1

    def fail(self, token, message):
        raise FormulaError(self.formula, token.pos, message)

    def _attribute(self, t):
        if t.kind == "name" and t.text.startswith("."):
            self.fail(t, f"attribute access ({t.text!r}) is not supported: a formula names "
                      "columns and calls only its listed functions")

    def finish(self, where):
        t = self.peek()
        if t.kind == "eof":
            return
        self._attribute(t)
        if t.kind == "op" and t.text in ("|", "||"):
            self.fail(t, "a random-effect term must be in parentheses: (1 | g)")
        if t.kind == "op" and t.text == "=":
            self.fail(t, "'=' is only for a function's keyword arguments, e.g. s(z, k = 20)")
        self.fail(t, f"unexpected {t.text!r} in {where}: terms are joined by '+', ':', '*' "
                  "or '/', and arithmetic goes inside I(...)")

    def _operand(self):
        t = self.peek()
        if t.kind == "eof" or (t.kind == "op" and t.text in _OPERAND_MISSING):
            before = self.tokens[self.i - 1].text if self.i else None
            if before in ("+", "-"):
                self.fail(t, f"empty term (a {before!r} with nothing on one side)")
            self.fail(t, "a term is missing here (e.g. a column name)")

    # formula level: R's precedence
    def sum(self):
        start, items, sign = self.peek().pos, [], "+"
        if self.at("-"):
            sign = self.take().text
        elif self.at("+"):
            self.fail(self.peek(), "empty term (a '+' with nothing on one side)")
        while True:
            self._operand()
            items.append((sign, self.product()))
            if not self.at("+", "-"):
                return Sum(tuple(items), start, items[-1][1].end)
            sign = self.take().text

    def product(self):
        left = self.inter()
        while self.at("*", "/"):
            op = self.take()
            self._operand()
            left = BinOp(op.text, left, self.inter(), op.pos)
        return left

    def inter(self):
        left = self.power()
        while self.at(":"):
            op = self.take()
            self._operand()
            left = BinOp(":", left, self.power(), op.pos)
        return left

    def power(self):
        base = self.atom()
        if self.at("^", "**"):
            op = self.take()
            n = self.take()
            if n.kind != "num" or not isinstance(n.value, int) or n.value < 1:
                self.fail(n, "the power of formula terms, (a + b)^2, is a whole number >= 1 "
                          "(arithmetic powers go inside I(...))")
            return BinOp("^", base, Num(n.value, n.pos, n.pos + len(n.text)), op.pos)
        return base

    def atom(self):
        t = self.peek()
        if t.kind == "op" and t.text == "(":
            self.take()
            inner = self.nest(self.sum)
            if self.at("|", "||"):
                double = self.take().text == "||"
                self._operand()
                rhs = self.sum()
                close = self._close()
                return Random(inner, rhs, double, t.pos, close.pos + 1)
            close = self._close()
            return Sum(inner.items, t.pos, close.pos + 1)
        if t.kind == "str":
            self.fail(t, "a string is not a term: strings are only arguments of s(bs = ...) "
                      "and C(f, Treatment('level'))")
        if t.kind in ("name", "num"):
            return self.primary()
        self._operand()
        self.fail(t, f"unexpected {t.text!r}")

    def _close(self):
        t = self.peek()
        if not self.at(")"):
            self.finish("parentheses")
        return self.take()

    # arithmetic: Python's precedence
    def arith(self):
        left = self.term()
        while self.at("+", "-"):
            op = self.take()
            left = BinOp(op.text, left, self.term(), op.pos)
        return left

    def term(self):
        left = self.unary()
        while self.at("*", "/"):
            op = self.take()
            left = BinOp(op.text, left, self.unary(), op.pos)
        return left

    def unary(self):
        if self.at("-", "+"):
            op = self.take()
            operand = self.nest(self.unary)
            return Unary(operand, op.pos, operand.end) if op.text == "-" else operand
        base = self.primary()
        if self.at("**", "^"):
            op = self.take()
            return BinOp("**", base, self.nest(self.unary), op.pos)
        return base

    def primary(self):
        t = self.peek()
        if t.kind == "num":
            self.take()
            return Num(t.value, t.pos, t.pos + len(t.text))
        if t.kind == "str":
            self.take()
            return Str(t.value, t.pos, t.pos + len(t.text))
        if t.kind == "name":
            self.take()
            if self.at("("):
                return self.nest(self.call, t)
            return Name(t.value, t.pos, t.pos + len(t.text))
        if self.at("("):
            self.take()
            inner = self.nest(self.arith)
            self._close()
            return inner
        if self.at(":"):
            self.fail(t, "':' (interaction) is not arithmetic: inside I() and function "
                      "arguments use + - * / **")
        if t.kind == "eof" or self.at(",", ")"):
            self.fail(t, "an argument or operand is missing here")
        self.fail(t, f"unexpected {t.text!r} in an expression")

    def call(self, name):
        self.take()  # (
        args, kwargs = [], []
        while not self.at(")"):
            t = self.peek()
            if t.kind == "name" and self.peek(1).kind == "op" and self.peek(1).text == "=":
                self.take()
                self.take()
                if any(k == t.value for k, _, _ in kwargs):
                    self.fail(t, f"{name.value}(): {t.value} is given twice")
                kwargs.append((t.value, self.arith(), t.pos))
            else:
                if kwargs:
                    self.fail(t, f"{name.value}(): a positional argument after a keyword "
                              "argument")
                args.append(self.arith())
            if not self.at(","):
                break
            self.take()
            if self.at(")"):
                self.fail(self.peek(), f"empty argument in {name.value}()")
        close = self.peek()
        if self.at(":"):
            self.fail(close, "':' (interaction) is not arithmetic: inside I() and function "
                      "arguments use + - * / **")
        if not self.at(")"):
            self._attribute(close)
            self.fail(close, f"{name.value}(): expected ',' or ')' here")
        self.take()
        return Call(name.value, tuple(args), tuple(kwargs), name.pos, close.pos + 1)


def parse(formula):
    """``(response, rhs)``: the response as an arithmetic tree, the right-hand side as a
    `Sum` of its terms."""
    tokens = _tokenize(formula)
    _check_parentheses(formula, tokens)
    tildes = [k for k, t in enumerate(tokens) if t.kind == "op" and t.text == "~"]
    if len(tildes) != 1:
        raise FormulaError(formula, tokens[tildes[1]].pos if tildes else len(formula),
                           "a formula needs exactly one '~' between response and predictors")
    k = tildes[0]
    if k == 0:
        raise FormulaError(formula, tokens[0].pos, "the response (left of '~') is missing")
    lhs = _Parser(formula, tokens[:k], tokens[k].pos)
    response = lhs.arith()
    lhs.finish("the response")
    rhs = _Parser(formula, tokens[k + 1:], len(formula))
    terms = rhs.sum()
    rhs.finish("the formula")
    return response, terms


# ------------------------------------------------------------------------------ labels
_PLAIN = re.compile(r"(?!\.\d)[A-Za-z_.][A-Za-z0-9_.]*")
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4}


def quote(name):
    """A column name as a formula writes it: bare, or in backticks when it must be."""
    plain = _PLAIN.fullmatch(name) and set(name) != {"."} and \
        not any(p.startswith("__") for p in name.split("."))
    return name if plain else f"`{name}`"


def label(node, need=0):
    """The canonical text of an arithmetic tree, spaced and parenthesized as Python's
    ``ast.unparse`` writes it (``I(x ** (-1))``): the names of the design's columns."""
    if isinstance(node, (Num, Str)):
        return repr(node.value)
    if isinstance(node, Name):
        return quote(node.name)
    if isinstance(node, Call):
        parts = [label(a) for a in node.args] + [f"{k}={label(v)}" for k, v, _ in node.kwargs]
        return f"{node.func}({', '.join(parts)})"
    if isinstance(node, Unary):
        text, own = "-" + label(node.operand, _PRECEDENCE["neg"]), _PRECEDENCE["neg"]
    elif node.op == "**":  # right-associative; nested, so bounded by the parser's depth
        own = _PRECEDENCE["**"]
        text = f"{label(node.left, own + 1)} ** {label(node.right, own)}"
    else:  # a chain of operators of one precedence needs no parentheses inside
        own = _PRECEDENCE[node.op]
        first, links = chain(node, [op for op, p in _PRECEDENCE.items() if p == own])
        text = " ".join([label(first, own)] + [f"{b.op} {label(b.right, own + 1)}"
                                               for b in links])
    return f"({text})" if own < need else text
