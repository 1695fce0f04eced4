"""The ARM template expression language: its grammar and one evaluator.

A JSON string that starts with `[` and ends with `]` is an expression;
`[[` at the start is a literal `[` (the rest of the string is kept as it is).
Inside the brackets:

    expression := primary ( "." name | "[" expression "]" )*
    primary    := "'" chars "'"            a string; '' is one quote
                | number                   an integer (-12), or a decimal
                | name "(" [expression ("," expression)*] ")"   a function call
                | "true" | "false" | "null"

Function names are case-insensitive, `.name` and `['name']` read an object's
property case-insensitively (ARM's objects are) and `[i]` an array's item.
An expression is parsed once into a small tree of tuples (cached by its
text) and evaluated against a Scope, which owns the function table and what
the template declares. `if` evaluates only the branch it takes. Every error
is an Invalid whose message names the function or the token.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from appgw.config.fields import Invalid

# Parsed nodes: ("lit", value) | ("call", name, args, spelled) | ("prop", target, name)
# | ("index", target, expression)
Node = tuple[Any, ...]

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<name>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)?(?=\s*\())
    | (?P<word>[A-Za-z_$][\w$]*)
    | (?P<punct>[(),.\[\]])
    )""",
    re.X,
)


def is_expression(value: Any) -> bool:
    """A string that holds a template expression (not a `[[` literal)."""
    return (
        isinstance(value, str)
        and value.startswith("[")
        and value.endswith("]")
        and not value.startswith("[[")
    )


def literal(value: str) -> str:
    """A JSON string that is not an expression, as ARM reads it (`[[x` -> `[x`)."""
    return value[1:] if value.startswith("[[") else value


class Scope(Protocol):
    """What an expression is evaluated against."""

    def call(self, name: str, args: list[Any], spelled: str) -> Any:
        """Call the function `name` (lower case; `spelled` as written) with
        evaluated arguments; an unknown name raises Invalid naming it."""


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Node:
    """The tree of an expression string `[...]`; raises Invalid on a syntax error."""
    tokens = _tokens(text[1:-1])
    parser = _Parser(tokens, text)
    node = parser.expression()
    if parser.position != len(tokens):
        raise Invalid(f"{text!r}: unexpected {tokens[parser.position][1]!r}")
    return node


def _tokens(body: str) -> list[tuple[str, str]]:
    tokens = []
    position = 0
    while position < len(body):
        if body[position:].strip() == "":
            break
        match = _TOKEN.match(body, position)
        if match is None or match.end() == position:
            raise Invalid(f"cannot read the expression at {body[position:].strip()[:20]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens = tokens
        self.text = text
        self.position = 0

    def _peek(self) -> tuple[str, str]:
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        return ("end", "")

    def _take(self, punct: str) -> None:
        kind, value = self._peek()
        if kind != "punct" or value != punct:
            found = "the end" if kind == "end" else repr(value)
            raise Invalid(f"{self.text!r}: expected {punct!r}, found {found}")
        self.position += 1

    def expression(self) -> Node:
        node = self._primary()
        while True:
            kind, value = self._peek()
            if kind == "punct" and value == ".":
                self.position += 1
                kind, name = self._peek()
                if kind not in ("word", "name"):
                    raise Invalid(f"{self.text!r}: expected a property name after '.'")
                self.position += 1
                node = ("prop", node, name)
            elif kind == "punct" and value == "[":
                self.position += 1
                index = self.expression()
                self._take("]")
                node = ("index", node, index)
            else:
                return node

    def _primary(self) -> Node:
        kind, value = self._peek()
        self.position += 1
        if kind == "string":
            return ("lit", value[1:-1].replace("''", "'"))
        if kind == "number":
            return ("lit", float(value) if "." in value else int(value))
        if kind == "name":
            self._take("(")
            args: list[Node] = []
            if self._peek() != ("punct", ")"):
                args.append(self.expression())
                while self._peek() == ("punct", ","):
                    self.position += 1
                    args.append(self.expression())
            self._take(")")
            return ("call", value.lower(), tuple(args), value)
        if kind == "word" and value.lower() in _WORDS:
            return ("lit", _WORDS[value.lower()])
        if kind == "end":
            raise Invalid(f"{self.text!r}: the expression ends too early")
        raise Invalid(f"{self.text!r}: unexpected {value!r}")


_MISSING = object()
_WORDS = {"true": True, "false": False, "null": None}


def evaluate(text: str, scope: Scope) -> Any:
    """The value of the expression string `text` (`[...]`) in `scope`."""
    value = evaluate_node(parse(text), scope)
    if isinstance(value, Unresolved):
        raise value.invalid()
    return value


def evaluate_node(node: Node, scope: Scope) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "call":
        name, args = node[1], node[2]
        if name == "if":  # only the branch taken is evaluated
            if len(args) != 3:
                raise Invalid("if() takes 3 arguments: condition, true value, false value")
            condition = evaluate_node(args[0], scope)
            if not isinstance(condition, bool):
                raise Invalid(f"if(): the condition must be true or false, not {condition!r}")
            return evaluate_node(args[1] if condition else args[2], scope)
        values = [evaluate_node(a, scope) for a in args]
        for value in values:
            if isinstance(value, Unresolved):
                raise value.invalid()
        return scope.call(name, values, node[3])
    target = evaluate_node(node[1], scope)
    if kind == "prop":
        return member(target, node[2])
    key = evaluate_node(node[2], scope)
    if isinstance(key, Unresolved):
        raise key.invalid()
    return member(target, key)


class Unresolved:
    """A value that exists only after deployment in Azure (`reference(...)`'s
    outputs and runtime properties), carried as its path until it is used."""

    def __init__(self, path: str) -> None:
        self.path = path

    def invalid(self) -> Invalid:
        return Invalid(
            f"{self.path} exists only once deployed in Azure; "
            f"give it with --reference {self.path}=VALUE"
        )


class Failed:
    """A value that could not be evaluated: its error, raised when the value is
    read (so a value nobody reads costs nothing, and the message names the key
    path of the one who reads it)."""

    def __init__(self, message: str) -> None:
        self.message = message


class Deployed(dict[str, Any]):
    """An object read with reference(): a property it does not declare is Unresolved."""

    def __init__(self, path: str, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self.path = path


def member(target: Any, key: Any) -> Any:
    """`target.key` / `target[key]` as ARM reads them."""
    if isinstance(target, Unresolved):
        return Unresolved(f"{target.path}.{key}")
    if isinstance(target, Mapping):
        if not isinstance(key, str):
            raise Invalid(f"an object's property name must be a string, not {key!r}")
        found = _MISSING
        if key in target:
            found = target[key]
        else:
            for name, value in target.items():
                if str(name).lower() == key.lower():
                    found = value
                    break
        if isinstance(found, Failed):
            raise Invalid(found.message)
        if isinstance(target, Deployed):
            if isinstance(found, Mapping):
                return Deployed(f"{target.path}.{key}", found)
            if found is not _MISSING:
                return found
            return Unresolved(f"{target.path}.{key}")
        if found is not _MISSING:
            return found
        known = ", ".join(sorted(str(k) for k in target)) or "none"
        raise Invalid(f"the object has no property {key!r} (it has: {known})")
    if isinstance(target, Sequence) and not isinstance(target, str):
        if not isinstance(key, int) or isinstance(key, bool):
            raise Invalid(f"an array's index must be an integer, not {key!r}")
        if not 0 <= key < len(target):
            raise Invalid(f"index {key} is out of range (the array has {len(target)} items)")
        if isinstance(target[key], Failed):
            raise Invalid(target[key].message)
        return target[key]
    raise Invalid(f"cannot read {key!r} of {type_name(target)} {target!r}")


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return "null" if value is None else type(value).__name__


def walk(value: Any, leaf: Callable[[str], Any]) -> Any:
    """`value` with every string (at any depth) replaced by `leaf(string)`."""
    if isinstance(value, str):
        return leaf(value)
    if isinstance(value, Mapping):
        return {k: walk(v, leaf) for k, v in value.items()}
    if isinstance(value, list):
        return [walk(v, leaf) for v in value]
    return value
