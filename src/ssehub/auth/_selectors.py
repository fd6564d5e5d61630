"""Topic selectors: `*`, an exact topic, or an RFC 6570 URI template, matched against a topic.

The Mercure draft (draft-dunglas-mercure-07, "Topic Selectors") defines the matching:

    "To determine if a string matches a selector, the following steps must be followed:
     1. If the topic selector is `*` then the string matches the selector.
     2. If the topic selector and the string are exactly the same, the string matches the
        selector. This characteristic allows to compare a URI Template with another one.
     3. If the topic selector is a valid URI Template, and that the string matches this URI
        Template, the string matches the selector.
     4. Otherwise the string does not match the selector."

"Matches this URI Template" means here: the topic is, character for character, one expansion of
the template (RFC 6570 §3) in which every variable of the template is defined, with these rules:

- Literal text between expressions matches itself exactly (any character but `{` and `}`: topics
  need not be URIs, so `user.{id}` works on plain names).
- A value is made of *units*: an allowed character, or a percent-encoded triplet `%XX` (two hex
  digits; a `%` not followed by two hex digits is never part of a value). Which characters are
  allowed is RFC 6570 Appendix A's `allow` row: "U" (unreserved: `A-Z a-z 0-9 - . _ ~`) for
  `{var}`, `{.var}`, `{/var}`, `{;var}`, `{?var}`, `{&var}`; "U+R" (unreserved and reserved:
  also ``:/?#[]@!$&'()*+,;=``) for `{+var}` and `{#var}`. So `https://example.com/users/{id}`
  matches `.../users/7` but not `.../users/7/friends` (`/` is not unreserved), and `{+path}`
  matches across `/`. Non-ASCII characters only ever match as literal text, as RFC 6570 expands
  them percent-encoded.
- Per operator (the `first`/`sep`/`named`/`ifemp` rows of Appendix A), for variables
  `x`, `y`:

  ====== ========================= ==========================================
  form   matches                   note
  ====== ========================= ==========================================
  {x}    V                         V: one or more units
  {x,y}  V,V
  {+x}   V                         units from U+R
  {#x}   #V                        units from U+R
  {.x}   .V          {.x,y} .V.V
  {/x}   /V          {/x,y} /V/V
  {;x}   ;x or ;x=V  {;x,y} ;x=V;y=V  (empty value: `;x`, RFC 6570 ifemp "")
  {?x}   ?x=E        {?x,y} ?x=E&y=E  E: zero or more units (ifemp "=")
  {&x}   &x=E        {&x,y} &x=E&y=E
  ====== ========================= ==========================================

- Prefix `{x:n}`: the value has 1 to n units (0 to n after `?x=`/`&x=`). A triplet counts as one
  unit, so a multi-byte character (several triplets) counts as several: a slightly stricter
  match than RFC 6570's count of characters.
- Explode `{x*}`: one or more items joined by the operator's separator (`,` for `{x*}`, `{+x*}`
  and `{#x*}`; `.`, `/`, `;`, `&`, `&` for `.`, `/`, `;`, `?`, `&`), each item `K` or `K=E`
  (K: one or more units): a list (`red,green`, `/red/green`, `;list=red;list=green`) or a map
  (`semi=%3B,dot=.`, `?a=1&b=2`).
- Without explode a variable is a single string value: `{list}` does not match the
  comma-joined form `red,green` that RFC 6570 gives a list value (write `{list*}`).
- Every variable of the template must be present: RFC 6570 expands an undefined variable to
  nothing, but `/search{?q,page}` matches `/search?q=a&page=2`, not `/search?q=a` nor `/search`.

A string is a template only if it contains at least one expression and every `{` opens a
well-formed expression (RFC 6570 §2.2: an optional operator among `+ # . / ; ? &`, then
`varspec *( "," varspec )`, `varname [ ":" 1-9999 / "*" ]`) closed by `}`, and no `}` stands
outside one. Anything else (`{`, `{}`, `{=x}` with a reserved operator, `a}b`) is not a template
and matches only itself, exactly; so is a template naming the same variable twice
(`{id}/{id}`), whose expansion repeats one value: matching it with independent values would
grant more than it says, so it is refused rather than loosened.

Matching never backtracks: the matcher carries the set of topic positions reachable after each
part of the template (a Thompson-style simulation), so its cost is at most quadratic in the
topic's length for any template. A template in a token cannot stall the hub the way a regular
expression with nested quantifiers can (draft-dunglas-mercure-08 warns about exactly that, of
its URL patterns: "crafted patterns can therefore trigger catastrophic backtracking").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

__all__ = ["Selector", "compile_selector", "selector_matches"]

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_RESERVED = frozenset(":/?#[]@!$&'()*+,;=")
_UNRESERVED_OR_RESERVED = _UNRESERVED | _RESERVED
_HEX = frozenset("0123456789ABCDEFabcdef")

# RFC 6570 §2.3: varname = varchar *( ["."] varchar ); varchar = ALPHA / DIGIT / "_" / pct-encoded.
# §2.4: prefix = ":" max-length; max-length = %x31-39 0*3DIGIT; explode = "*".
_VARCHAR = r"(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})"
_VARSPEC = re.compile(rf"({_VARCHAR}(?:\.?{_VARCHAR})*)(?::([1-9][0-9]{{0,3}})|(\*))?")

# RFC 6570 Appendix A: operator -> (first, sep, named, ifemp, allow U+R).
_OPERATORS: dict[str, tuple[str, str, bool, str, bool]] = {
    "": ("", ",", False, "", False),
    "+": ("", ",", False, "", True),
    ".": (".", ".", False, "", False),
    "/": ("/", "/", False, "", False),
    ";": (";", ";", True, "", False),
    "?": ("?", "&", True, "=", False),
    "&": ("&", "&", True, "=", False),
    "#": ("#", ",", False, "", True),
}
# RFC 6570 §2.2: "op-reserve = "=" / "," / "!" / "@" / "|"" are "reserved for future
# extensions"; with them (or anything else unknown) the string is not a template.
_OPERATOR_CHARS = "+#./;?&"


class _Part:
    """One piece of a compiled template: maps the set of positions it may start at to the set
    of positions it may end at, in one topic."""

    __slots__ = ()

    def step(self, topic: str, starts: set[int]) -> set[int]:
        raise NotImplementedError


class _Literal(_Part):
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def step(self, topic: str, starts: set[int]) -> set[int]:
        text = self.text
        return {p + len(text) for p in starts if topic.startswith(text, p)}


class _Run(_Part):
    """`low` to `high` (None: unbounded) units of one character class."""

    __slots__ = ("allowed", "high", "low")

    def __init__(self, allowed: frozenset[str], low: int, high: int | None) -> None:
        self.allowed = allowed
        self.low = low
        self.high = high

    def step(self, topic: str, starts: set[int]) -> set[int]:
        allowed, high, n = self.allowed, self.high, len(topic)

        def unit(p: int) -> int:
            # The unit at p is fixed by p alone ('%' is never an allowed character), so the
            # walk from any position is one deterministic chain: that is what lets a position
            # reached twice stop the second walk.
            c = topic[p]
            if c in allowed:
                return 1
            if c == "%" and p + 2 < n and topic[p + 1] in _HEX and topic[p + 2] in _HEX:
                return 3
            return 0

        ends: set[int] = set(starts) if self.low == 0 else set()
        if high is None or high >= n:  # a prefix longer than the topic bounds nothing
            reached: set[int] = set()
            for p in starts:
                while p < n:
                    size = unit(p)
                    if not size:
                        break
                    p += size
                    if p in reached:
                        break  # the rest of this chain was walked already
                    reached.add(p)
            ends |= reached
        else:
            fewest: dict[int, int] = {}  # position -> fewest units it was reached with
            for p in starts:
                count = 0
                while count < high and p < n:
                    size = unit(p)
                    if not size:
                        break
                    p += size
                    count += 1
                    if fewest.get(p, high + 1) <= count:
                        break  # reached before with as much room left: nothing new beyond
                    fewest[p] = count
            ends.update(fewest)
        return ends


class _Sequence(_Part):
    __slots__ = ("parts",)

    def __init__(self, parts: Iterable[_Part]) -> None:
        self.parts = tuple(parts)

    def step(self, topic: str, starts: set[int]) -> set[int]:
        for part in self.parts:
            if not starts:
                break
            starts = part.step(topic, starts)
        return starts


class _Optional(_Part):
    __slots__ = ("part",)

    def __init__(self, part: _Part) -> None:
        self.part = part

    def step(self, topic: str, starts: set[int]) -> set[int]:
        return starts | self.part.step(topic, starts)


class _Repeat(_Part):
    """One or more `item`s separated by the literal `separator`."""

    __slots__ = ("item", "separator")

    def __init__(self, item: _Part, separator: str) -> None:
        self.item = item
        self.separator = _Literal(separator)

    def step(self, topic: str, starts: set[int]) -> set[int]:
        result = self.item.step(topic, starts)
        frontier = result
        while frontier:
            more = self.item.step(topic, self.separator.step(topic, frontier)) - result
            result |= more
            frontier = more
        return result


def _variable(name: str, prefix: int | None, explode: bool, operator: str) -> _Part:
    _, sep, named, ifemp, reserved = _OPERATORS[operator]
    allowed = _UNRESERVED_OR_RESERVED if reserved else _UNRESERVED
    if explode:
        key = _Run(allowed, 1, None)
        item = _Sequence((key, _Optional(_Sequence((_Literal("="), _Run(allowed, 0, None))))))
        return _Repeat(item, sep)
    if not named:
        return _Run(allowed, 1, prefix)
    if ifemp == "=":  # ? and &: "name=" then the value, which may be empty
        return _Sequence((_Literal(name + "="), _Run(allowed, 0, prefix)))
    # ;: "name" alone for an empty value, else "name=value"
    return _Sequence(
        (_Literal(name), _Optional(_Sequence((_Literal("="), _Run(allowed, 1, prefix)))))
    )


def _expression(body: str, names: set[str]) -> _Part | None:
    """The part for the inside of one `{...}`, or None if it is not well-formed."""
    operator = body[:1] if body[:1] in _OPERATOR_CHARS else ""
    varspecs = body[len(operator) :].split(",")
    first, sep, *_ = _OPERATORS[operator]
    parts: list[_Part] = [_Literal(first)] if first else []
    for index, varspec in enumerate(varspecs):
        spec = _VARSPEC.fullmatch(varspec)
        if spec is None:
            return None
        name, prefix, explode = spec.groups()
        if name in names:
            return None  # a repeated variable: see the module docstring
        names.add(name)
        if index:
            parts.append(_Literal(sep))
        parts.append(_variable(name, int(prefix) if prefix else None, bool(explode), operator))
    return _Sequence(parts)


def _template(text: str) -> _Part | None:
    """The compiled template, or None when `text` is not a well-formed URI template."""
    parts: list[_Part] = []
    names: set[str] = set()
    position = 0
    expressions = 0
    while True:
        start = text.find("{", position)
        literal = text[position:] if start < 0 else text[position:start]
        if "}" in literal:
            return None
        if literal:
            parts.append(_Literal(literal))
        if start < 0:
            break
        end = text.find("}", start + 1)
        if end < 0 or "{" in text[start + 1 : end]:
            return None
        expression = _expression(text[start + 1 : end], names)
        if expression is None:
            return None
        parts.append(expression)
        expressions += 1
        position = end + 1
    return _Sequence(parts) if expressions else None


class Selector:
    """A compiled topic selector. `matches(topic)` follows the Mercure steps quoted above."""

    __slots__ = ("_prefix", "_suffix", "_template", "is_template", "is_wildcard", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.is_wildcard = text == "*"
        template = None if self.is_wildcard else _template(text)
        self._template = template
        self.is_template = template is not None
        # The literal text before the first and after the last expression: most topics a
        # template does not match are told apart by them at the cost of one string compare.
        self._prefix = text[: text.find("{")] if template is not None else ""
        self._suffix = text[text.rfind("}") + 1 :] if template is not None else ""

    def matches(self, topic: str) -> bool:
        if self.is_wildcard or topic == self.text:
            return True
        template = self._template
        if template is None:
            return False
        if not (topic.startswith(self._prefix) and topic.endswith(self._suffix)):
            return False
        return len(topic) in template.step(topic, {0})

    def __repr__(self) -> str:
        kind = "wildcard" if self.is_wildcard else "template" if self.is_template else "exact"
        return f"Selector({self.text!r}, {kind})"


@functools.lru_cache(maxsize=4096)
def compile_selector(text: str) -> Selector:
    """The compiled selector for `text` (cached: grants reuse a few selectors)."""
    return Selector(text)


def selector_matches(selector: str, topic: str) -> bool:
    """True when `topic` matches the topic selector `selector` (`*`, exact, or URI template)."""
    return compile_selector(selector).matches(topic)
