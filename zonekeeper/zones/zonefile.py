"""Zone text in and out: parse collecting every problem with its line, check, export.

Parsing first tries a fast reader for the common syntax (``_fast_records``: one record a
line or a parenthesised SOA, ``$ORIGIN`` and ``$TTL``, owners, TTLs and classes in either
order, A/AAAA/NS/CNAME/PTR/MX/TXT/SRV/CAA/SSHFP/TLSA built directly, other known types
through dnspython's rdata parser); at anything else ($GENERATE, a backslash, an unknown type or class, any
problem at all, a limit reached) it gives up and dnspython's zone-file reader reads the
whole text instead, keeping going after a bad record, so one import reports all of its
problems, as named-checkzone does. Both give the same records, TTLs and lines
(tests/unit/test_zonefile.py); the fast one is ~5.7x quicker (genzone.py's 30,000-record
zone: 0.47 vs 2.7 s).
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import gc
import io
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from socket import AF_INET as _AF_INET
from socket import AF_INET6 as _AF_INET6
from socket import inet_ntop as _inet_ntop
from socket import inet_pton as _inet_pton
from typing import Any

import dns.exception
import dns.grange
import dns.ipv4
import dns.ipv6
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.ttl
import dns.zonefile
from dns.rdtypes.ANY.CAA import CAA
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.SSHFP import SSHFP
from dns.rdtypes.ANY.TLSA import TLSA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from zonekeeper.errors import MAX_REASONS, ShuttingDown
from zonekeeper.settings import ZoneSettings
from zonekeeper.zones.model import Record, RRsetData, ZoneContent, let_go


@dataclass
class Problem:
    line: int | None
    msg: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.msg}" if self.line else self.msg


class Problems(list[Problem]):
    """Problems in the order found, keeping the first ``limit``; the rest are only counted
    (``total`` counts all), so a text of a million bad lines costs no more than a hundred."""

    def __init__(self, limit: int = MAX_REASONS) -> None:
        super().__init__()
        self.limit = limit
        self.total = 0

    def append(self, problem: Problem) -> None:
        self.total += 1
        if len(self) < self.limit:
            super().append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.append(problem)

    @property
    def dropped(self) -> int:
        return self.total - len(self)


class RecordLines(Mapping[tuple[dns.name.Name, int], int]):
    """(owner, type) -> the line of the RRset: of its first record, or of the second record
    of a type that takes one (``group``'s join sets those). Worked out from the records read
    (``keep``) at the first lookup: only a zone with findings to report asks, and a tuple key
    and a dict entry per RRset made for every import cost ~0.2 s and ~95 MB at a million."""

    __slots__ = ("_records", "_lines")

    def __init__(self) -> None:
        self._records: list[tuple[dns.name.Name, int, dns.rdata.Rdata, int]] | None = None
        self._lines: dict[tuple[dns.name.Name, int], int] = {}

    def keep(self, records: list[tuple[dns.name.Name, int, dns.rdata.Rdata, int]]) -> None:
        self._records = records

    def __setitem__(self, key: tuple[dns.name.Name, int], line: int) -> None:
        self._lines[key] = line

    def _all(self) -> dict[tuple[dns.name.Name, int], int]:
        if self._records is not None:
            first: dict[tuple[dns.name.Name, int], int] = {}
            for name, _ttl, rdata, line in self._records:
                first.setdefault((name, int(rdata.rdtype)), line)
            first.update(self._lines)  # the lines set apart (join) win
            self._lines, self._records = first, None
        return self._lines

    def __getitem__(self, key: tuple[dns.name.Name, int]) -> int:
        return self._all()[key]

    def __iter__(self) -> Iterator[tuple[dns.name.Name, int]]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def release(self) -> None:
        """Let go of the records and lines gradually (``model.let_go``)."""
        if self._records is not None:
            let_go(self._records)
            self._records = None
        let_go(self._lines)


@dataclass
class ParseResult:
    content: ZoneContent
    errors: Problems = field(default_factory=Problems)
    warnings: Problems = field(default_factory=Problems)
    lines: RecordLines = field(default_factory=RecordLines)
    # The setting whose limit ended parsing early (content is then partial and not checked).
    stopped_by: str | None = None
    # The first problem that a [zones] limit caused, if any (for a log line).
    limited: Problem | None = None

    def release(self) -> None:
        """Empty the content and the lines gradually (``model.let_go``), once read."""
        self.content.release()
        self.lines.release()


class _TooManyRecords(Exception):
    """Ends parsing: the text has more records than ``zones.max_records``."""

    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"the zone text has over {limit} records; at most {limit} are "
                         "allowed (zones.max_records)")
        self.line = line


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise ShuttingDown("the server is stopping; the zone text was not read to its end "
                           "and nothing was changed")


class _Manager:
    def __init__(self, origin: dns.name.Name) -> None:
        self.origin = origin

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return self.origin, False, self.origin


class _Collector:
    """Just enough of a dnspython transaction for the zone-file reader; it holds at most
    ``max_records`` and stops when ``cancel`` is set (also inside a $GENERATE)."""

    def __init__(self, origin: dns.name.Name, *, max_records: int,
                 cancel: threading.Event | None) -> None:
        self.manager = _Manager(origin)
        self.records: list[tuple[dns.name.Name, int, dns.rdata.Rdata, int]] = []
        self.line = 0
        self.max_records = max_records
        self.cancel = cancel

    def check_put_rdataset(self, _check: Any) -> None:
        pass

    def _set_origin(self, _origin: dns.name.Name) -> None:
        pass

    def add_unicode(self, _value: str) -> None:
        pass

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        if len(self.records) >= self.max_records:
            raise _TooManyRecords(self.line, self.max_records)
        if self.cancel is not None and not len(self.records) % 1024:
            _check_cancel(self.cancel)
        self.records.append((name, ttl, rdata, self.line))


class _Tokenizer(dns.tokenizer.Tokenizer):
    """A tokenizer that knows whether the line in hand is used up, and where it began.

    ``line_done``: the last token read was the end of the line (or of the input), or a
    failed read consumed the newline; skipping to the end of the line then would eat the
    next line. ``last_line``: the line the last read started on. A failed read inside a
    quoted string leaves the quoting mode, so later lines are read normally.
    """

    line_done = False
    last_line = 1

    @property
    def line(self) -> int:
        """The current line; ``line_number`` already counts a newline that was only peeked at."""
        return self.line_number - (self.ungotten_char == "\n")

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        before = self.last_line = self.line
        try:
            token = super().get(want_leading, want_comment)
        except dns.exception.SyntaxError:
            if self.quoting:
                self.quoting = False
                self.delimiters = dns.tokenizer._DELIMITERS
            if self.eof:
                self.multiline = 0  # reported once; the end of input is clean from here
            self.line_done = self.eof or (self.line > before and not self.multiline)
            raise
        self.line_done = token.is_eol_or_eof()
        return token

    def unget(self, token: dns.tokenizer.Token) -> None:
        super().unget(token)
        self.line_done = False


def _message(exc: Exception) -> str:
    msg = str(exc)
    if msg.startswith("caught exception"):
        msg = msg.split(": ", 1)[-1]
    return re.sub(r"^<zone>:\d+: ", "", msg) or "syntax error"


def _rdtype_named(text: str | None) -> str | None:
    """The record type ``text`` names, in its usual spelling, or None."""
    if not text:
        return None
    try:
        return dns.rdatatype.to_text(dns.rdatatype.from_text(text))
    except Exception:  # noqa: BLE001 - not a type (a TTL, a class)
        return None


class _Reader(dns.zonefile.Reader):
    """A reader that records each bad line and carries on with the next one."""

    tok: _Tokenizer

    def __init__(self, tok: _Tokenizer, txn: _Collector, origin: dns.name.Name, *,
                 generate_max_records: int):
        super().__init__(
            tok,
            dns.rdataclass.IN,
            txn,  # type: ignore[arg-type]
            allow_include=False,
            allow_directives={"$ORIGIN", "$TTL", "$GENERATE"},
        )
        self.collector = txn
        self.problems = Problems()
        self.generate_max_records = generate_max_records
        self.limited: Problem | None = None
        # Accept every owner here; out-of-zone names are reported by the checks.
        self.zone_origin = dns.name.root
        self.current_origin = origin
        self.last_name = origin

    def _guarded(self, method: Any, *, record: bool = False) -> None:
        _check_cancel(self.collector.cancel)
        line = self.tok.line
        self.collector.line = line
        self.last_identifier: str | None = None
        try:
            method()
        except dns.exception.DNSException as exc:  # e.g. NameTooLong is a FormError
            msg = _message(exc)
            rdtype = _rdtype_named(self.last_identifier) if record else None
            if rdtype is not None:
                # The type was read, so its data was at fault: say which type.
                msg = f"bad {rdtype} record: {msg}"
            self.problems.append(Problem(line, msg))
            if not self.tok.line_done:
                self._skip_line()

    def _get_identifier(self) -> dns.tokenizer.Token:
        # A record's TTL, class and type are read here (its data is not): the last one read
        # names the type once the data is being read.
        token = super()._get_identifier()
        self.last_identifier = token.value
        return token

    def _skip_line(self) -> None:
        while True:
            try:
                token = self.tok.get()
            except dns.exception.SyntaxError:
                if self.tok.eof:
                    # Unbalanced parentheses: nothing more can be read reliably.
                    raise
                if self.tok.line_done:  # e.g. a newline inside a quoted string
                    return
                continue
            if token.is_eol_or_eof():
                if token.is_eof():
                    self.tok.unget(token)
                break

    def _rr_line(self) -> None:
        self._guarded(super()._rr_line, record=True)

    def _generate_line(self) -> None:
        self._guarded(self._bounded_generate)

    def _bounded_generate(self) -> None:
        """$GENERATE, its range counted before anything is expanded."""
        token = self.tok.get()
        self.tok.unget(token)
        try:
            start, stop, step = dns.grange.from_text(token.value)
        except Exception:  # noqa: BLE001 - dnspython reports a bad range itself
            start = None
        if start is not None:
            count = len(range(start, stop + 1, step))
            if count > self.generate_max_records:
                msg = (f"$GENERATE {token.value} makes {count} records; at most "
                       f"{self.generate_max_records} are allowed per $GENERATE "
                       "(zones.generate_max_records)")
                self.limited = self.limited or Problem(self.collector.line, msg)
                raise dns.exception.SyntaxError(msg)
            collector = self.collector
            if len(collector.records) + count > collector.max_records:
                raise _TooManyRecords(collector.line, collector.max_records)
        super()._generate_line()


class _Unusual(Exception):
    """The fast reader met something it leaves to dnspython's reader."""


_IN = dns.rdataclass.IN
_T_SOA = dns.rdatatype.SOA
_T_A, _T_AAAA, _T_MX = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX
_T_TXT, _T_SRV, _T_CAA = dns.rdatatype.TXT, dns.rdatatype.SRV, dns.rdatatype.CAA
_T_SSHFP, _T_TLSA = dns.rdatatype.SSHFP, dns.rdatatype.TLSA
_ONE_NAME = {int(t): (cls, t) for cls, t in ((NS, dns.rdatatype.NS), (CNAME, dns.rdatatype.CNAME),
                                             (PTR, dns.rdatatype.PTR))}
# The fields of each type the fast reader makes, in the order _make_rdata is given them.
_K_ADDRESS, _K_TARGET, _K_TXT = ("address",), ("target",), ("strings",)
_K_MX, _K_SRV = ("preference", "exchange"), ("priority", "weight", "port", "target")
_K_CAA, _K_SSHFP = ("flags", "tag", "value"), ("algorithm", "fp_type", "fingerprint")
_K_TLSA = ("usage", "selector", "mtype", "cert")
_K_SOA = ("mname", "rname", "serial", "refresh", "retry", "expire", "minimum")
_TOKEN = re.compile(r"\S+")
# Whitespace other than space, tab and newline (\r, \v, \f, NBSP...): data to dnspython's
# tokenizer, a separator to str.split and to ``\s``.
_OTHER_SPACE = re.compile(r"[^\S \t\n]")
_OTHER_ASCII_SPACE = "\r\x0b\x0c\x1c\x1d\x1e\x1f"


def _other_space(text: str) -> bool:
    if text.isascii():  # a flag the string keeps: then a few fast scans, not the regex's
        return any(c in text for c in _OTHER_ASCII_SPACE)
    return _OTHER_SPACE.search(text) is not None
# TXT data that is quoted strings only (no backslash reaches the fast reader), and one string.
_QUOTED_ONLY = re.compile(r'\s*(?:"[^"]*"\s*)+')
_QUOTED = re.compile(r'"([^"]*)"')
# Characters a name's text escapes (dnspython's ``dns.name._escaped``) and printable ASCII's
# complement: a name written without them is printed as written.
_ESCAPED = re.compile(r'[^!#%&\'*+,\-./0-9:<=>?A-Z\[\]^_`a-z{|}~]')


def _caa_value(word: str) -> str | None:
    """A CAA value word, quoted or not, without its quotes; None if it is anything else."""
    if '"' not in word:
        return word
    if len(word) >= 2 and word[0] == word[-1] == '"' and '"' not in word[1:-1]:
        return word[1:-1]
    return None


def _strip_comment(line: str) -> str:
    """``line`` without its comment; a ``;`` inside a quoted string is data."""
    if '"' not in line:
        return line.split(";", 1)[0]
    if ";" not in line and not line.count('"') % 2:
        return line  # no comment, and no string left open (no backslash reaches here)
    quoted = False
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            return line[:i]
    if quoted:
        raise _Unusual  # a string running over the end of the line
    return line


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, text) of each line, comments removed, a parenthesised record
    joined into one line."""
    lines = text.split("\n")
    i = 0
    n = len(lines)
    while i < n:
        number = i + 1
        line = _strip_comment(lines[i])
        i += 1
        if "(" in line or ")" in line:
            if '"' in line:
                raise _Unusual  # a parenthesis may be data inside a string
            if line.count("(") != 1 or ")" in line.split("(", 1)[0]:
                raise _Unusual
            parts = [line.replace("(", " ")]
            while ")" not in parts[-1]:
                if i >= n:
                    raise _Unusual
                nxt = _strip_comment(lines[i])
                i += 1
                if "(" in nxt or '"' in nxt:
                    raise _Unusual
                parts.append(nxt)
            last = parts[-1]
            if last.count(")") != 1 or last.split(")", 1)[1].strip():
                raise _Unusual
            parts[-1] = last.replace(")", " ")
            line = " ".join(parts)
        yield number, line


def _data_start(line: str, at: int) -> int:
    """Where the RDATA begins in ``line``: just past its word ``at`` (the type)."""
    for i, m in enumerate(_TOKEN.finditer(line)):
        if i == at:
            return m.end()
    raise _Unusual


def _ttl(value: str) -> int | None:
    """A TTL (``3600``, ``1h30m``), or None for any other word (a class, a type)."""
    if not value[0].isdigit():
        return None  # every TTL starts with a digit: no exception raised for the others
    try:
        return dns.ttl.from_text(value)
    except dns.ttl.BadTTL:
        return None


try:  # names, rdata, the reader's and group's loops in C (proto/_dnsobj.c); the Python is the reference
    from zonekeeper.proto._dnsobj import NameSlots as _NameSlots
    from zonekeeper.proto._dnsobj import group_records as _c_group_records
    from zonekeeper.proto._dnsobj import make_name as _c_make_name
    from zonekeeper.proto._dnsobj import make_rdata as _c_make_rdata
    from zonekeeper.proto._dnsobj import name_hash as _c_name_hash
    from zonekeeper.proto._dnsobj import name_slots as _c_name_slots
    from zonekeeper.proto._dnsobj import presized as _c_presized
    from zonekeeper.proto._dnsobj import read_records as _c_read_records
except ImportError:  # built without a C compiler
    _c_name_hash = _c_make_name = _c_make_rdata = _c_read_records = _c_group_records = None
    _NameSlots = _c_name_slots = _c_presized = None
# dnspython's hash of a name is an unbounded integer, which hash() keeps while it fits a
# Py_ssize_t and reduces modulo sys.hash_info.modulus past that: the C one gives the same
# number on a 64-bit build (and make_name sets that number as the name's hash).
_C_HASH_OK = sys.hash_info.modulus == (1 << 61) - 1 and sys.maxsize == (1 << 63) - 1
_name_hash: Any = (_c_name_hash if _c_name_hash is not None and _C_HASH_OK
                   else lambda labels: hash(dns.name.Name(labels)))
if not _C_HASH_OK:
    _c_make_name = _c_read_records = _c_name_slots = None
_new = object.__new__
_ZERO10 = bytes(10)
_set = object.__setattr__


class _Name(dns.name.Name, *((_NameSlots,) if _c_name_slots is not None else ())):  # type: ignore[misc]
    """A ``dns.name.Name`` that works out its hash, text and wire form once, at their first
    use. dnspython's walks every octet of every label in Python at each call (hash ~2.4 us,
    text ~6 us, wire ~1.5 us here), and an imported record's owner is hashed about six
    times on its way to storage, and its names printed and rendered again for each RRset
    row and node they are in. Equal to, hashed and printed like the plain Name of the same
    labels."""

    __slots__ = ("_hash", "_text", "_wire", "_key")

    @classmethod
    def of(cls, labels: tuple[bytes, ...], text: str | None = None) -> _Name:
        """The name of ``labels`` (bytes), checked by dnspython's own label rules but
        without ``Name.__init__``'s per-label conversions and immutability guard (~4 us of
        its ~4.5). ``text``: its text as dnspython prints it, when the caller knows it."""
        dns.name._validate_labels(labels)
        if not labels or labels[-1]:
            raise ValueError("a _Name is absolute")  # to_wire and __eq__ rely on it
        name = _new(cls)
        _set(name, "labels", labels)
        # Every slot set (None: not worked out yet): a slot read before it is set raises
        # AttributeError, ~1 us each time.
        _set(name, "_hash", None)
        _set(name, "_text", text)
        _set(name, "_wire", None)
        _set(name, "_key", None)
        return name

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickled: as ``of`` makes it
        super().__setstate__(state)
        for slot in self.__slots__:
            _set(self, slot, None)

    # Where the C extension is built, these three are NameSlots' (below): the same in C.
    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = _name_hash(self.labels)
            _set(self, "_hash", h)
        return h  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        # dnspython's hash sums octets (``host09`` and ``host10`` collide), and its equality
        # test is a label-by-label walk in Python: between two of these names (absolute
        # both) it is the equality of their cached lower-case wire forms.
        if type(other) is _Name:
            return self.to_wire(canonicalize=True) == other.to_wire(canonicalize=True)
        return dns.name.Name.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def to_text(self, omit_final_dot: bool = False, style: dns.name.NameStyle | None = None) -> str:
        if style is None and not omit_final_dot and self._text is not None:
            return self._text  # type: ignore[no-any-return]
        return dns.name.Name.to_text(self, omit_final_dot, style)  # (keeps it, below)

    def to_styled_text(self, style: dns.name.NameStyle) -> str:
        if style.origin is not None or style.omit_final_dot or style.idna_codec is not None:
            return dns.name.Name.to_styled_text(self, style)
        text = self._text
        if text is None:
            text = dns.name.Name.to_styled_text(self, style)
            _set(self, "_text", text)
        return text  # type: ignore[no-any-return]

    def to_wire(self, file: Any | None = None, compress: Any | None = None,
                origin: dns.name.Name | None = None, canonicalize: bool = False) -> bytes | None:
        if compress is not None:
            return dns.name.Name.to_wire(self, file, compress, origin, canonicalize)
        slot = "_key" if canonicalize else "_wire"  # the node table's key, or as written
        wire = getattr(self, slot)
        if wire is None:
            wire = dns.name.Name.to_wire(self, None, None, None, canonicalize)  # absolute
            _set(self, slot, wire)
        if file is None:
            return wire  # type: ignore[no-any-return]
        file.write(wire)
        return None


# The Python ways, kept as the reference (tests/unit/test_zonefile.py holds C to them).
_py_name_hash, _py_name_eq, _py_name_ne = _Name.__hash__, _Name.__eq__, _Name.__ne__
_COMPARISONS = ("__lt__", "__le__", "__eq__", "__ne__", "__gt__", "__ge__")  # Py_LT..Py_GE
if _c_name_slots is not None:
    # hash() and == of _Names in C, with no Python function entered (an import's owners
    # are looked up and set in dicts several times a record): all six comparisons taken
    # from NameSlots, so that the class's comparison slot is NameSlots' C function itself.
    # Against anything but a _Name, and for the orderings, it calls dns.name.Name's own.
    for _op in ("__hash__", *_COMPARISONS):
        setattr(_Name, _op, getattr(_NameSlots, _op))
    _c_name_slots(_Name, dns.name.Name.labels, _Name._hash, _Name._key,  # their descriptors
                  tuple(getattr(dns.name.Name, op) for op in _COMPARISONS),
                  lambda name: name.to_wire(canonicalize=True))


def _name(value: str, origin: dns.name.Name) -> dns.name.Name:
    """``dns.name.from_text(value, origin)`` for a name with no escapes: its labels split
    and checked by dnspython's label rules, not read a character at a time; by
    ``_c_make_name`` (proto/_dnsobj.c) where it is built, as below, unless the name is one
    the lines below must decide on (not ASCII, the root, a label rule broken)."""
    if _c_make_name is not None:
        got = _c_make_name(_Name, value, origin.labels, origin.to_text())
        if got is not None:
            return got  # type: ignore[no-any-return]
    if not value.isascii() or value == ".":
        return dns.name.from_text(value, origin)
    # Printed as written unless a character needs escaping (one of ``"().;\\@$``, the dots
    # between labels aside; no backslash reaches the fast reader, nor any space).
    plain = not _ESCAPED.search(value)
    if value.endswith("."):
        return _Name.of((*value[:-1].encode().split(b"."), b""), value if plain else None)
    suffix = origin.to_text()
    return _Name.of((*value.encode().split(b"."), *origin.labels),
                    (value + suffix if suffix == "." else f"{value}.{suffix}") if plain else None)


def _py_make_rdata(cls: type[dns.rdata.Rdata], rdclass: dns.rdataclass.RdataClass,
                   rdtype: dns.rdatatype.RdataType, keys: tuple[str, ...],
                   *values: object) -> dns.rdata.Rdata:
    """An rdata of ``cls`` with the fields ``keys`` set to ``values``, already checked as
    its constructor checks them. dnspython's constructor spends ~12 of its ~13 us on its
    immutability guard and on checking the class and type again; the object made here is
    the same (equal, hashed, printed and rendered alike: tests/unit/test_zonefile.py
    compares both readers). ``_make_rdata``: this, or the same in C."""
    rd = _new(cls)
    _set(rd, "rdclass", rdclass)
    _set(rd, "rdtype", rdtype)
    _set(rd, "rdcomment", None)
    for key, value in zip(keys, values, strict=True):
        _set(rd, key, value)
    return rd


_make_rdata: Any = _c_make_rdata or _py_make_rdata


def _ipv4(text: str) -> str:
    """An IPv4 address as dnspython keeps it (its canonical text): the text itself when it
    is already that form, else dnspython's conversion (which raises on a bad address)."""
    try:
        if _inet_ntop(_AF_INET, _inet_pton(_AF_INET, text)) == text:
            return text
    except OSError:
        pass
    return dns.ipv4.canonicalize(text)


def _ipv6(text: str) -> str:
    """An IPv6 address as dnspython keeps it (``dns.ipv6.canonicalize``: ~25 us in Python).
    The C library reads the texts dnspython reads, and prints an address as dnspython does
    (zeros compressed alike, lower-case hex) except where the first five groups are zero
    (embedded IPv4 forms): those, and texts the C library refuses, go to dnspython."""
    try:
        packed = _inet_pton(_AF_INET6, text)
    except OSError:
        return dns.ipv6.canonicalize(text)
    if packed[:10] != _ZERO10:
        return _inet_ntop(_AF_INET6, packed)
    return dns.ipv6.canonicalize(text)


def _uint(word: str, top: int) -> int:
    """A decimal field of at most ``top`` (255, 65535), as dnspython's tokenizer reads it."""
    if not (word.isascii() and word.isdigit()):  # "١٠" is a number to str, not to dnspython
        raise _Unusual
    value = int(word)
    if value > top:
        raise _Unusual
    return value


def _digits(word: str) -> bool:
    return word.isascii() and word.isdigit()


def _unhex(words: list[str]) -> bytes:
    """Hex digits written as one word or several (SSHFP, TLSA), as dnspython reads them."""
    return binascii.unhexlify("".join(words).encode())


_TYPES: dict[str, int] = {}


def _rdtype(word: str) -> int:
    got = _TYPES.get(word)
    if got is None:
        got = dns.rdatatype.from_text(word)
        if len(_TYPES) < 1000:
            _TYPES[word] = got
    return got


def _rdtype_read(word: str) -> int:
    """The type a word names (``_rdtype``); ``_Unusual`` for any word that names none: the
    dnspython reader reports it."""
    try:
        return _rdtype(word)
    except Exception:  # noqa: BLE001
        raise _Unusual from None


def _origin_of(word: str, current: dns.name.Name) -> dns.name.Name:
    """The origin a ``$ORIGIN`` line sets."""
    return _Name.of(dns.name.from_text(word, current).labels)


def _other_rdata(line: str, words: list[str], at: int, rdtype: int,
                 current: dns.name.Name) -> dns.rdata.Rdata:
    """The rdata of a record line whose type (word ``at`` of ``words``) is none of those the
    reader's loop makes itself (A, AAAA, NS, CNAME, PTR, MX, SRV, TXT of quoted strings), or
    is one of them written another way: CAA, SSHFP and TLSA in their common forms, anything
    else through dnspython's rdata reader. ``_Unusual`` (or dnspython's error) for a line
    the zone reader must read."""
    rest = words[at + 1 :]
    if (rdtype == 257 and len(rest) == 3 and '"' not in rest[1]
            and (value := _caa_value(rest[2])) is not None):
        tag = rest[1].encode()
        if len(tag) > 255 or not tag.isalnum():
            raise _Unusual
        return _make_rdata(CAA, _IN, _T_CAA, _K_CAA, _uint(rest[0], 255), tag, value.encode())  # type: ignore[no-any-return]
    if rdtype == 44 and len(rest) >= 3:
        fp_type, fingerprint = _uint(rest[1], 255), _unhex(rest[2:])
        if len(fingerprint) != SSHFP._fingerprint_length_by_type.get(fp_type, len(fingerprint)):
            raise _Unusual
        return _make_rdata(SSHFP, _IN, _T_SSHFP, _K_SSHFP, _uint(rest[0], 255), fp_type, fingerprint)  # type: ignore[no-any-return]
    if rdtype == 52 and len(rest) >= 4:
        mtype, cert = _uint(rest[2], 255), _unhex(rest[3:])
        if len(cert) != TLSA._cert_length_by_mtype.get(mtype, len(cert)):
            raise _Unusual
        return _make_rdata(TLSA, _IN, _T_TLSA, _K_TLSA, _uint(rest[0], 255), _uint(rest[1], 255),  # type: ignore[no-any-return]
                           mtype, cert)
    tok = dns.tokenizer.Tokenizer(line[_data_start(line, at) :])
    rd = dns.rdata.from_text(_IN, rdtype, tok, current, False, None)
    if not tok.get().is_eol_or_eof():
        raise _Unusual
    return rd


# What means "leave the text to dnspython's reader" when raised in the loop or a callback.
_UNUSUAL = (dns.exception.DNSException, ValueError, TypeError, AttributeError, _Unusual)
# The C loop's callbacks and classes (proto/_dnsobj.c, read_records: the order is its env's).
_C_TYPES = ((A, _T_A, _K_ADDRESS), (AAAA, _T_AAAA, _K_ADDRESS),
            (NS, dns.rdatatype.NS, _K_TARGET), (CNAME, dns.rdatatype.CNAME, _K_TARGET),
            (PTR, dns.rdatatype.PTR, _K_TARGET), (MX, _T_MX, _K_MX), (TXT, _T_TXT, _K_TXT),
            (SRV, _T_SRV, _K_SRV), (SOA, _T_SOA, _K_SOA))


def _c_env(cancel: threading.Event | None) -> tuple[object, ...]:
    check = None if cancel is None else functools.partial(_check_cancel, cancel)
    return (_Name, _name, _rdtype_read, _ttl, dns.ttl.from_text, _origin_of, _ipv4, _ipv6,
            _other_rdata, check, _UNUSUAL, _IN, _C_TYPES, _TYPES)


def _fast_records(text: str, origin: dns.name.Name, *, max_records: int,
                  cancel: threading.Event | None,
                  c_loop: bool = True) -> list[tuple[dns.name.Name, int, dns.rdata.Rdata, int]]:
    """The records of a zone text in the common syntax, as dnspython's reader (set up as
    ``_Reader`` does) would give them; ``_Unusual`` at anything else or any problem.
    The loop runs in C (``_c_read_records``: ~2x faster) where it is built and the text is
    ASCII without a NUL, else here; ``c_loop=False`` runs it here (the tests compare them)."""
    if "\\" in text or _other_space(text):
        raise _Unusual  # dnspython separates words by spaces and tabs only
    if c_loop and _c_read_records is not None and text.isascii() and "\0" not in text:
        got = _c_read_records(text, origin, _Name.of(origin.labels), max_records, _c_env(cancel))
        if got is None:
            raise _Unusual
        return got  # type: ignore[no-any-return]
    out: list[tuple[dns.name.Name, int, dns.rdata.Rdata, int]] = []
    current: dns.name.Name = _Name.of(origin.labels)
    last_name = origin
    last_ttl = 0
    last_ttl_known = False
    default_ttl = 0
    default_known = False
    default_from_soa = False
    # Names made so far under ``current``, by text (emptied at each $ORIGIN: names compare
    # regardless of case, and a name completed with ``Up.test.`` must not be given where
    # ``up.test.`` was the origin).
    names: dict[str, dns.name.Name] = {}

    def name_of(value: str) -> dns.name.Name:
        got = names.get(value)
        if got is None:
            got = current if value == "@" else _name(value, current)
            if len(names) < 100_000:
                names[value] = got
        return got

    try:
        for number, line in _logical_lines(text):
            words = line.split()  # the words of ``\S+``: str.split and re agree on spaces
            if not words:
                continue
            first = words[0]
            if first[0] == "$" and line[0] not in " \t":
                directive = first.upper()
                if directive == "$TTL" and len(words) == 2:
                    default_ttl = dns.ttl.from_text(words[1])
                    default_known = True
                    default_from_soa = False
                elif directive == "$ORIGIN" and len(words) == 2:
                    current = _origin_of(words[1], current)
                    names.clear()
                else:
                    raise _Unusual
                continue
            if line[0] in " \t":
                at = 0
            else:
                last_name = name_of(first)
                at = 1
            name = last_name
            ttl = None
            if at < len(words):
                ttl = _ttl(words[at])
                if ttl is not None:
                    at += 1
            if at < len(words) and words[at].upper() == "IN":
                at += 1
            if ttl is None and at < len(words):
                ttl = _ttl(words[at])
                if ttl is not None:
                    at += 1
            if ttl is not None:
                last_ttl, last_ttl_known = ttl, True
            if at >= len(words):
                raise _Unusual
            rdtype = _rdtype_read(words[at])
            if rdtype > 255 and words[at].upper().startswith("TYPE"):
                raise _Unusual  # generic syntax is for dnspython
            rest = words[at + 1 :]
            if rdtype == 1 and len(rest) == 1:
                rd: dns.rdata.Rdata = _make_rdata(A, _IN, _T_A, _K_ADDRESS, _ipv4(rest[0]))
            elif rdtype == 28 and len(rest) == 1:
                rd = _make_rdata(AAAA, _IN, _T_AAAA, _K_ADDRESS, _ipv6(rest[0]))
            elif rdtype in _ONE_NAME and len(rest) == 1:
                cls, enum = _ONE_NAME[rdtype]
                rd = _make_rdata(cls, _IN, enum, _K_TARGET, name_of(rest[0]))
            elif rdtype == 15 and len(rest) == 2:
                rd = _make_rdata(MX, _IN, _T_MX, _K_MX, _uint(rest[0], 65535), name_of(rest[1]))
            elif rdtype == 16 and _QUOTED_ONLY.fullmatch(line, data := _data_start(line, at)):
                strings = tuple(t.encode() for t in _QUOTED.findall(line, data))
                if not strings or any(len(t) > 255 for t in strings):
                    raise _Unusual  # dnspython's reader says what is wrong
                rd = _make_rdata(TXT, _IN, _T_TXT, _K_TXT, strings)
            elif rdtype == 33 and len(rest) == 4:
                rd = _make_rdata(SRV, _IN, _T_SRV, _K_SRV, _uint(rest[0], 65535), _uint(rest[1], 65535),
                                 _uint(rest[2], 65535), name_of(rest[3]))
            elif rdtype == _T_SOA and len(rest) == 7 and all(_digits(w) for w in rest[2:]):
                # The serial and the four TTLs in digits (TTLs with units: dnspython's way).
                rd = _make_rdata(SOA, _IN, _T_SOA, _K_SOA, name_of(rest[0]), name_of(rest[1]),
                                 *(_uint(w, 0xFFFFFFFF) for w in rest[2:]))
            else:
                rd = _other_rdata(line, words, at, rdtype, current)
            if ttl is None:
                if last_ttl_known and (not default_known or default_from_soa):
                    ttl = last_ttl
                elif default_known:
                    ttl = default_ttl
            if not default_known and rdtype == _T_SOA:
                default_ttl = rd.minimum  # type: ignore[attr-defined]
                default_known = default_from_soa = True
                if ttl is None:
                    ttl = last_ttl if last_ttl_known else default_ttl
            if ttl is None:
                raise _Unusual
            if len(out) >= max_records:
                raise _Unusual
            if not len(out) % 1024:
                _check_cancel(cancel)
            out.append((name, ttl, rd, number))
    except _UNUSUAL:
        raise _Unusual from None
    return out


_gc_lock = threading.Lock()
_gc_pausers = 0  # parses of large texts under way (each in its own worker thread)
_gc_since = 0.0  # when the collector last ran (or was paused), while paused

# Past this many characters (~20,000 records) a parse pauses the cyclic garbage collector.
GC_PAUSE_OVER = 1_000_000
# Imports that keep overlapping keep it paused: then it runs once each this many seconds.
GC_PAUSE_MAX = 60.0


@contextmanager
def gc_paused(pause: bool) -> Iterator[None]:
    """The cyclic garbage collector paused while a large text is read and stored
    (``pause``), then running again. Reading makes several objects a record, none in a
    reference cycle, and each full collection walks them all: at a million records 19 of
    them took 17 of 33 s. Paused by the first of concurrent imports, running again after
    the last, when the objects are gone; cyclic garbage made meanwhile elsewhere in the
    process waits until then, or at most ``GC_PAUSE_MAX`` seconds while imports keep
    overlapping: an import that starts or ends past that runs one collection."""
    global _gc_pausers, _gc_since
    if not pause:
        yield
        return
    with _gc_lock:
        if _gc_pausers == 0 and not gc.isenabled():
            pause = False  # paused by someone else: theirs to turn back on
        else:
            if _gc_pausers == 0:
                _gc_since = time.monotonic()
            else:
                _gc_overdue()
            _gc_pausers += 1
            gc.disable()
    try:
        yield
    finally:
        if pause:
            with _gc_lock:
                _gc_pausers -= 1
                if _gc_pausers == 0:
                    gc.enable()
                else:
                    _gc_overdue()


def _gc_overdue() -> None:
    """One collection if the collector has been paused longer than ``GC_PAUSE_MAX``."""
    global _gc_since
    if time.monotonic() - _gc_since > GC_PAUSE_MAX:
        gc.collect()
        _gc_since = time.monotonic()


def _large(text: str | None) -> bool:
    return text is not None and len(text) > GC_PAUSE_OVER


def gc_paused_for(text: str | None) -> contextlib.AbstractContextManager[None]:
    """``gc_paused`` for the work of reading and storing ``text``: paused if it is large."""
    return gc_paused(_large(text))


# The GIL's switch interval while a large text is read and stored in a worker thread.
QUICK_SWITCH = 0.001
_switch_lock = threading.Lock()
_switchers = 0
_switch_was = 0.0


@contextmanager
def quick_switches_for(text: str | None) -> Iterator[None]:
    """While a large text (as ``gc_paused_for``) is read and stored, the GIL's switch
    interval is ``QUICK_SWITCH`` instead of Python's 5 ms: the event loop, which answers
    DNS over TCP and the API, waits at most that long each time it asks for the GIL behind
    the import's worker, and a TCP query asks several times. Back to what it was after the
    last of concurrent imports."""
    global _switchers, _switch_was
    if not _large(text):
        yield
        return
    with _switch_lock:
        if _switchers == 0:
            _switch_was = sys.getswitchinterval()
            sys.setswitchinterval(min(QUICK_SWITCH, _switch_was))
        _switchers += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switchers -= 1
            if _switchers == 0:
                sys.setswitchinterval(_switch_was)


def parse_zone_text(text: str, origin: dns.name.Name, *, limits: ZoneSettings | None = None,
                    cancel: threading.Event | None = None, fast: bool = True) -> ParseResult:
    """Parse zone text for ``origin``; never raises on bad content, collects problems.

    Past ``limits`` (``[zones]`` settings) parsing stops with a problem naming the line and the
    setting. ``cancel`` set (the server stopping) raises ShuttingDown within a few records.
    ``fast=False`` goes straight to dnspython's reader (the tests compare the two).
    """
    with gc_paused_for(text):
        return _parse_zone_text(text, origin, limits or ZoneSettings(), cancel, fast)


def _parse_zone_text(text: str, origin: dns.name.Name, limits: ZoneSettings,
                     cancel: threading.Event | None, fast: bool) -> ParseResult:
    if fast:
        try:
            records = _fast_records(text, origin, max_records=limits.max_records, cancel=cancel)
        except _Unusual:
            pass
        else:
            result = ParseResult(ZoneContent(origin))
            group(records, result, cancel=cancel)
            return result
    collector = _Collector(origin, max_records=limits.max_records, cancel=cancel)
    tok = _Tokenizer(io.StringIO(text), "<zone>")
    reader = _Reader(tok, collector, origin, generate_max_records=limits.generate_max_records)
    errors = reader.problems
    while True:
        # A bad directive (or a bad first token) ends read(): note it and carry on with
        # the next line, so every problem is reported.
        try:
            reader.read()
            break
        except _TooManyRecords as exc:
            errors.append(Problem(exc.line, str(exc)))
            return ParseResult(ZoneContent(origin), errors=errors, stopped_by="zones.max_records",
                               limited=reader.limited or Problem(exc.line, str(exc)))
        except dns.zonefile.UnknownOrigin:
            errors.append(Problem(None, "no $ORIGIN and the zone name is unknown"))
            break
        except dns.exception.DNSException as exc:
            errors.append(Problem(tok.last_line, _message(exc)))
            if tok.eof:
                break
            if not tok.line_done:
                try:
                    reader._skip_line()
                except dns.exception.DNSException as exc2:
                    errors.append(Problem(tok.last_line, _message(exc2)))
                    break
    result = ParseResult(ZoneContent(origin), errors=errors, limited=reader.limited)
    group(collector.records, result, cancel=cancel)
    return result


class _RecordStream(dns.tokenizer.Tokenizer):
    """A tokenizer on which a record ends where its fields end, not only at the end of the
    line, so one line can hold several records of one type."""

    def get_eol_as_token(self) -> dns.tokenizer.Token:
        token = self.get()
        if not token.is_eol_or_eof():
            self.unget(token)
            return dns.tokenizer.Token(dns.tokenizer.EOL, "\n")
        return token


def read_records(rdtype: int | str, text: str, origin: dns.name.Name) -> list[dns.rdata.Rdata]:
    """The records of type ``rdtype`` in ``text``, read one after another with dnspython's
    zone-file rdata reader: each takes as many words as its type has fields (``192.0.2.1
    192.0.2.2`` is two A records, ``10 mail`` one MX), and a type whose last field takes the
    rest of the line (TXT, DS, SSHFP...) takes every word left. Relative names are completed
    with ``origin``. Raises ``dns.exception.DNSException`` when the text is not such records."""
    tok = _RecordStream(text)
    out = []
    while True:
        token = tok.get()
        if token.is_eol_or_eof():
            return out
        tok.unget(token)
        out.append(dns.rdata.from_text(dns.rdataclass.IN, rdtype, tok, origin=origin,
                                       relativize=False))


_SINGLETONS = {int(dns.rdatatype.SOA), int(dns.rdatatype.CNAME), int(dns.rdatatype.DNAME)}


def group(records: Iterable[tuple[dns.name.Name, int, dns.rdata.Rdata, int]], result: ParseResult,
          *, cancel: threading.Event | None = None, c_loop: bool = True) -> None:
    """Group parsed records into RRsets, noting TTL mismatches and duplicates, into
    ``result.content``, which must be empty (its owners are handed over, not merged).
    The loop runs in C where it is built (``c_loop=False``: here; the tests compare them)."""
    # By owner, then type: the content's own shape, so each record's owner is hashed once
    # here (and the owners are handed over with the hashes kept: ZoneContent.put_owners).
    owners: dict[dns.name.Name, dict[int, RRsetData]] = {}
    lines = result.lines
    # The RDATA of each RRset of two records or more, for the duplicate check: a scan of
    # the RRset's list made an RRset of n records cost n^2/2 comparisons (45 s at 4,100).
    held: dict[tuple[dns.name.Name, int], set[dns.rdata.Rdata]] = {}

    def join(name: dns.name.Name, rdtype: int, ttl: int, rdata: dns.rdata.Rdata, line: int,
             existing: RRsetData) -> None:
        """A record of an RRset already begun."""
        key = (name, rdtype)
        rdatas = held.get(key)
        if rdatas is None:
            rdatas = held[key] = {r.rdata for r in existing.records}
        if rdata in rdatas:
            result.warnings.append(Problem(line, f"duplicate record {name} {rdata.rdtype.name} ignored"))
            return
        rdatas.add(rdata)
        if ttl != existing.ttl:
            result.warnings.append(
                Problem(
                    line,
                    f"{name} {rdata.rdtype.name}: TTL {ttl} differs from the RRset's "
                    f"{existing.ttl}; using {existing.ttl}",
                )
            )
        existing.records.append(Record(rdata))
        if rdtype in _SINGLETONS:
            # The second record of a singleton type is the problem: point at its line.
            lines[key] = line

    # The first record's line of each RRset is found in the records if ever asked.
    records = records if isinstance(records, list) else list(records)
    lines.keep(records)
    if _c_presized is not None and len(records) > 65536:  # no resize of a big dict
        owners = _c_presized(len(records))
    if c_loop and _c_group_records is not None:
        check = None if cancel is None else functools.partial(_check_cancel, cancel)
        _c_group_records(records, owners, None, RRsetData, Record, join, check)
        result.content.put_owners(owners)
        return
    for i, (name, ttl, rdata, line) in enumerate(records):
        if not i % 65536:
            _check_cancel(cancel)
        rdtype = int(rdata.rdtype)
        types = owners.get(name)
        if types is None:
            owners[name] = {rdtype: RRsetData(name, rdtype, ttl, [Record(rdata)])}
            continue
        existing = types.get(rdtype)
        if existing is None:
            types[rdtype] = RRsetData(name, rdtype, ttl, [Record(rdata)])
            continue
        join(name, rdtype, ttl, rdata, line, existing)
    result.content.put_owners(owners)


def export_text(content: ZoneContent, *, serial_ttl_default: int | None = None) -> str:
    """Canonical zone text: $ORIGIN, $TTL, SOA first, then owners in DNSSEC order."""
    origin = content.origin
    soa = content.get(origin, dns.rdatatype.SOA)
    ttl = soa.ttl if soa is not None else (serial_ttl_default or 3600)
    out = [f"$ORIGIN {origin.to_text()}", f"$TTL {ttl}"]

    def line(rrset: RRsetData, rec: Record) -> str:
        owner = rrset.name.relativize(origin).to_text()
        text = rec.rdata.to_text(origin=origin, relativize=True)
        prefix = "; disabled: " if rec.disabled else ""
        return f"{prefix}{owner}\t{rrset.ttl}\tIN\t{dns.rdatatype.to_text(rrset.rdtype)}\t{text}"

    if soa is not None:
        out.extend(line(soa, r) for r in soa.records)
    for rrset in content.sorted_rrsets():
        if rrset.rdtype == dns.rdatatype.SOA and rrset.name == origin:
            continue
        out.extend(line(rrset, r) for r in sorted(rrset.records, key=lambda r: r.sort_key))
    return "\n".join(out) + "\n"
