"""`.dockerignore` glob patterns compiled to a small automaton and matched without backtracking.

A pattern becomes a program of positions (one per character test, star or `**`), the positions of many patterns
are run together as a set (Thompson's construction), and each set reached is remembered as a state of a lazily
built DFA. A path therefore costs one table lookup per character once its states are known, and at most one set
step (linear in the number of positions) per character when they are not: linear in pattern length times path
length whatever the pattern, where a backtracking regular expression takes exponential time on `*a*a*a*b` or a
chain of `**/`.

Syntax is Go's `filepath.Match` (validated the same way) with moby's `**`: `*` is any run of non-`/` characters,
`?` one non-`/` character, `[...]` a class (`^` negates, a negated class also matches `/`, `*` and `?` are literal
inside, a reversed range matches nothing), `\\x` the literal `x`, `**/` zero or more leading segments, a final `**`
anything, and any other `**` "nothing, or anything ending in `/`". A leading `**` followed only by literal text is
a plain suffix test at any depth (moby's fast path, so `**.pyc` excludes `a/b/x.pyc` as real Docker does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

__all__ = ["BadPattern", "Glob", "GlobSet", "compile_glob"]

# Position kinds. A program is a tuple of (kind, argument) pairs; the position after the last one accepts.
_LIT = 0  # argument: the one character matched
_CLASS = 1  # argument: (negated, ((low, high), ...))
_ONE = 2  # `?`: any character but `/`
_STAR = 3  # `*`: stays on any character but `/`; may be left without consuming
_ANY = 4  # final `**` or the suffix test's lead: stays on anything; may be left without consuming
_SPLIT = 5  # entry of a `(.*/)?` group: goes to the group's body or past it without consuming
_DIRS = 6  # body of a `(.*/)?` group: stays on anything; a `/` also leaves it
_ACCEPT = 7  # argument: the pattern's index in its GlobSet

Program = tuple[tuple[int, object], ...]

# Characters that make a pattern's text leave moby's "literal suffix" fast path.
_NOT_LITERAL = frozenset("*?[]\\")
# Characters with a meaning in a pattern (`]` is literal outside a class).
_SPECIAL = frozenset("*?[\\")
# Bound on remembered DFA states (each a set of positions with its transitions); the cache is dropped when full.
_MAX_STATES = 4096
_MAX_PREFIXES = 1 << 16
# Bound on the positions held by all remembered states together (thousands of glob lines make each state large).
_MAX_POSITIONS = 1 << 19


class BadPattern(ValueError):
    """Go's filepath.ErrBadPattern, with the reason."""


class Glob:
    """One compiled pattern: its program, and whether it is plain text (`literal` then holds that text)."""

    __slots__ = ("_program", "literal")

    def __init__(self, program: Program = (), *, literal: str | None = None) -> None:
        self._program = program
        if literal is None:
            chars = [arg for kind, arg in program if kind == _LIT]
            literal = "".join(map(str, chars)) if len(chars) == len(program) else None
        self.literal = literal

    @property
    def program(self) -> Program:
        """The positions to run; a literal's are made only when asked for (most literals only meet a dict)."""
        if not self._program and self.literal:
            self._program = tuple((_LIT, char) for char in self.literal)
        return self._program

    def matches(self, path: str) -> bool:
        """Whether the pattern matches the whole of `path`."""
        if self.literal is not None:
            return path == self.literal
        return GlobSet([self]).last_match(path) == 0


def _class_char(text: str, i: int) -> tuple[str, int]:
    """One member of a `[...]` class at `text[i]` (Go `getEsc`): the character and the index after it."""
    if i >= len(text):
        raise BadPattern("character class is not closed with ']'")
    if text[i] in "-]":
        raise BadPattern(f"misplaced {text[i]!r} in a character class")
    if text[i] == "\\":
        i += 1
        if i >= len(text):
            raise BadPattern("'\\' at the end of a character class")
    i += 1
    if i >= len(text):
        raise BadPattern("character class is not closed with ']'")
    return text[i - 1], i


def _read_class(text: str, i: int) -> tuple[tuple[int, object], int]:
    """The position for the class whose `[` is just before `text[i]`, and the index after its `]`."""
    negated = i < len(text) and text[i] == "^"
    if negated:
        i += 1
    ranges: list[tuple[str, str]] = []
    count = 0
    while True:
        if count and text[i] == "]":
            return (_CLASS, (negated, tuple(ranges))), i + 1
        low, i = _class_char(text, i)
        high = low
        if text[i] == "-":
            high, i = _class_char(text, i + 1)
        if low <= high:
            ranges.append((low, high))
        count += 1


def compile_glob(text: str) -> Glob:
    """The compiled form of a cleaned pattern; raises BadPattern where Go's filepath.Match would."""
    if _SPECIAL.isdisjoint(text):
        return Glob(literal=text)
    program: list[tuple[int, object]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "*":
            if i + 1 < n and text[i + 1] == "*":
                i += 2
                if i < n and text[i] == "/":
                    i += 1
                program.extend([(_ANY, None)] if i == n else [(_SPLIT, None), (_DIRS, None)])
                continue
            program.append((_STAR, None))
        elif char == "?":
            program.append((_ONE, None))
        elif char == "\\":
            i += 1
            if i == n:
                raise BadPattern("'\\' at the end of the pattern escapes nothing")
            program.append((_LIT, text[i]))
        elif char == "[":
            position, i = _read_class(text, i + 1)
            program.append(position)
            continue
        else:
            program.append((_LIT, char))
        i += 1
    rest = text[2:]
    if text.startswith("**") and rest and rest[0] != "/" and _NOT_LITERAL.isdisjoint(rest):
        return Glob(((_ANY, None), *((_LIT, c) for c in rest)))
    return Glob(tuple(program))


def _in_class(argument: object, char: str) -> bool:
    negated, ranges = cast("tuple[bool, tuple[tuple[str, str], ...]]", argument)
    return any(low <= char <= high for low, high in ranges) is not negated


class _Dfa:
    """The lazily built DFA of one GlobSet: state 0 is the start, state 1 the dead state (no position left)."""

    __slots__ = ("accepts", "ids", "moves", "prefixes", "sets", "size")

    def __init__(self, start: frozenset[int], kinds: Sequence[int], args: Sequence[object]) -> None:
        self.sets: list[frozenset[int]] = []
        self.moves: list[dict[str, int]] = []
        self.accepts: list[int] = []
        self.ids: dict[frozenset[int], int] = {}
        self.size = 0
        # The state reached after each directory prefix (`a/b/`) seen: a walk reads a directory's entries one
        # after another, so each entry only runs its own name.
        self.prefixes: dict[str, int] = {"": 0}
        self.intern(start, kinds, args)
        self.intern(frozenset(), kinds, args)

    def intern(self, positions: frozenset[int], kinds: Sequence[int], args: Sequence[object]) -> int:
        known = self.ids.get(positions)
        if known is not None:
            return known
        accepted = [cast(int, args[p]) for p in positions if kinds[p] == _ACCEPT]
        self.ids[positions] = len(self.sets)
        self.size += len(positions)
        self.sets.append(positions)
        self.moves.append({})
        self.accepts.append(max(accepted) if accepted else -1)
        return len(self.sets) - 1


class GlobSet:
    """Several globs matched at once: `last_match` gives the highest index of a glob matching a whole path.

    Safe to share between threads: the DFA cache only grows by whole states, and a full cache is replaced, not
    emptied in place.
    """

    __slots__ = ("_args", "_dfa", "_kinds", "_start")

    def __init__(self, globs: Sequence[Glob]) -> None:
        kinds: list[int] = []
        args: list[object] = []
        starts: list[int] = []
        for index, glob in enumerate(globs):
            starts.append(len(kinds))
            for kind, arg in glob.program:
                kinds.append(kind)
                args.append(arg)
            kinds.append(_ACCEPT)
            args.append(index)
        self._kinds = kinds
        self._args = args
        self._start = self._closure(starts)
        self._dfa = _Dfa(self._start, kinds, args)

    def _closure(self, positions: Sequence[int]) -> frozenset[int]:
        """`positions` plus every position reachable from them without consuming a character."""
        kinds = self._kinds
        seen = set(positions)
        pending = list(positions)
        while pending:
            p = pending.pop()
            kind = kinds[p]
            if kind in (_STAR, _ANY):
                following: tuple[int, ...] = (p + 1,)
            elif kind == _SPLIT:
                following = (p + 1, p + 2)
            else:
                continue
            for q in following:
                if q not in seen:
                    seen.add(q)
                    pending.append(q)
        return frozenset(seen)

    def _step(self, dfa: _Dfa, state: int, char: str) -> int:
        """The state after `char` from `state`, computed from its positions and remembered."""
        kinds, args = self._kinds, self._args
        reached: list[int] = []
        for p in dfa.sets[state]:
            kind = kinds[p]
            if kind == _LIT:
                if args[p] == char:
                    reached.append(p + 1)
            elif kind == _STAR:
                if char != "/":
                    reached.append(p)
            elif kind in (_ANY, _DIRS):
                reached.append(p)
                if kind == _DIRS and char == "/":
                    reached.append(p + 1)
            elif kind == _ONE:
                if char != "/":
                    reached.append(p + 1)
            elif kind == _CLASS and _in_class(args[p], char):
                reached.append(p + 1)
        target = dfa.intern(self._closure(reached), kinds, args)
        dfa.moves[state][char] = target
        return target

    def _run(self, dfa: _Dfa, state: int, text: str) -> tuple[_Dfa, int]:
        """The DFA in use and the state after `text` from `state` (1, the dead state, once no position is left).

        A full cache is replaced by a fresh one holding the current state, so memory stays bounded even when one
        path creates many large states; at worst every character then costs one set step, never more.
        """
        moves = dfa.moves
        for char in text:
            target = moves[state].get(char)
            if target is None:
                if len(dfa.sets) > _MAX_STATES or dfa.size > _MAX_POSITIONS:
                    positions = dfa.sets[state]
                    dfa = self._dfa = _Dfa(self._start, self._kinds, self._args)
                    state = dfa.intern(positions, self._kinds, self._args)
                    moves = dfa.moves
                target = self._step(dfa, state, char)
            if target == 1:
                return dfa, 1
            state = target
        return dfa, state

    def _after_prefix(self, dfa: _Dfa, prefix: str) -> tuple[_Dfa, int]:
        """The state after `prefix` (empty or ending in `/`), from the longest remembered prefix of it."""
        prefixes = dfa.prefixes
        pending = [prefix]
        cut = prefix.rfind("/", 0, len(prefix) - 1) + 1
        while (state := prefixes.get(prefix[:cut])) is None:
            pending.append(prefix[:cut])
            cut = prefix.rfind("/", 0, cut - 1) + 1
        done = cut
        for entry in reversed(pending):
            dfa, state = self._run(dfa, state, entry[done:])
            dfa.prefixes[entry] = state
            done = len(entry)
        return dfa, state

    def last_match(self, path: str) -> int:
        """Index of the last glob matching the whole of `path`, or -1."""
        dfa = self._dfa
        if len(dfa.prefixes) > _MAX_PREFIXES:
            dfa = self._dfa = _Dfa(self._start, self._kinds, self._args)
        cut = path.rfind("/") + 1
        state = dfa.prefixes.get(path[:cut])
        if state is None:
            dfa, state = self._after_prefix(dfa, path[:cut])
        if state != 1:
            dfa, state = self._run(dfa, state, path[cut:])
        return dfa.accepts[state]
