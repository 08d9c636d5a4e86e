"""TSIG key material (RFC 8945): algorithms, generated secrets, and the text formats of
BIND, Knot, NSD, PowerDNS and ``dig -y``. Pure functions; no storage, no logging."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass

import dns.name
import dns.tsig

from zonekeeper.text import absolute

# Algorithm name (as operators write it) → (dnspython name, secret bytes when generated).
ALGORITHMS: dict[str, tuple[dns.name.Name, int]] = {
    "hmac-md5": (dns.tsig.HMAC_MD5, 16),
    "hmac-sha1": (dns.tsig.HMAC_SHA1, 20),
    "hmac-sha224": (dns.tsig.HMAC_SHA224, 28),
    "hmac-sha256": (dns.tsig.HMAC_SHA256, 32),
    "hmac-sha384": (dns.tsig.HMAC_SHA384, 48),
    "hmac-sha512": (dns.tsig.HMAC_SHA512, 64),
}
GENERATED = ("hmac-sha256", "hmac-sha224", "hmac-sha384", "hmac-sha512")
DEFAULT_ALGORITHM = "hmac-sha256"
EXPORT_FORMATS = ("bind", "knot", "nsd", "pdns", "dig")


class KeyFormatError(ValueError):
    """Key text or fields that cannot be used; the message never contains a secret."""


class KeyNameError(KeyFormatError):
    """A key name that is not a valid name, or not one every tool's config can hold."""


# A label of a key name we create: what BIND, Knot, NSD and PowerDNS take unquoted or in
# their quoted strings without escapes. (DNS allows any octet in a label; a name such as
# "has\032space." exports into configs that break.)
_KEY_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")


@dataclass(frozen=True)
class KeyMaterial:
    name: str  # absolute, lower case, trailing dot
    algorithm: str  # e.g. "hmac-sha256"
    secret: str  # base64

    def to_dnspython(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret, ALGORITHMS[self.algorithm][0])


def normalize_algorithm(text: str) -> str:
    alg = text.strip().lower().rstrip(".")
    if alg == "hmac-md5.sig-alg.reg.int":
        alg = "hmac-md5"
    if alg not in ALGORITHMS:
        raise KeyFormatError(
            f"unknown TSIG algorithm {text!r}; use one of {', '.join(ALGORITHMS)}"
        )
    return alg


def normalize_name(text: str) -> str:
    """A key name as stored: absolute, lower case. Lookups take any name, so a key stored
    before names were checked can still be shown, exported and deleted."""
    raw = text.strip().strip('"')
    if not raw:
        raise KeyNameError("a key name is required")
    try:
        name = dns.name.from_text(absolute(raw))
    except Exception as exc:  # noqa: BLE001 - dnspython raises several kinds
        raise KeyNameError(f"{raw!r} is not a valid key name: {exc}") from None
    return name.to_text().lower()


def new_name(text: str) -> str:
    """The name of a key being created or imported: normalized, and made of hostname-like
    labels (letters, digits, hyphen, underscore, separated by dots)."""
    name = normalize_name(text)
    labels = name[:-1].split(".") if name != "." else []
    if not labels or not all(_KEY_LABEL.fullmatch(label) for label in labels):
        raise KeyNameError(
            f"{text.strip()!r} is not usable as a key name: use labels of letters, digits, "
            "'-' and '_' separated by dots (as 'xfr-key' or 'ns2.example.com'), which BIND, "
            "Knot, NSD and PowerDNS configurations can all hold")
    return name


def check_secret(secret: str) -> str:
    clean = secret.strip().strip('"')
    try:
        raw = base64.b64decode(clean, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("the secret is not valid base64") from None
    if len(raw) < 10:
        raise KeyFormatError(f"the secret is only {len(raw)} bytes; use at least 16")
    return base64.b64encode(raw).decode()


def generate(name: str, algorithm: str = DEFAULT_ALGORITHM) -> KeyMaterial:
    alg = normalize_algorithm(algorithm)
    if alg not in GENERATED:
        raise KeyFormatError(f"{alg} keys can be imported but not generated; use hmac-sha256")
    size = ALGORITHMS[alg][1]
    return KeyMaterial(new_name(name), alg, base64.b64encode(secrets.token_bytes(size)).decode())


def make(name: str, algorithm: str, secret: str) -> KeyMaterial:
    return KeyMaterial(new_name(name), normalize_algorithm(algorithm), check_secret(secret))


_BIND = re.compile(
    r'key\s+"?(?P<name>[^"\s{]+)"?\s*\{(?P<body>[^}]*)\}\s*;?', re.IGNORECASE | re.DOTALL
)
_BIND_ALG = re.compile(r"algorithm\s+\"?([\w.-]+)\"?\s*;", re.IGNORECASE)
_BIND_SECRET = re.compile(r'secret\s+"([^"]+)"\s*;', re.IGNORECASE)
_YAML_ITEM = re.compile(r"^\s*(-\s*)?(id|name|algorithm|secret)\s*:\s*(.+?)\s*$", re.IGNORECASE)
_COLON = re.compile(r"^\s*(?:(hmac-[\w-]+):)?([^:\s]+):([A-Za-z0-9+/=]+)\s*$", re.IGNORECASE)


def parse_text(text: str) -> list[KeyMaterial]:
    """Keys from BIND ``key`` blocks, Knot/NSD ``key:`` entries or ``[alg:]name:secret`` lines."""
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith(("#", "//")))
    keys: list[KeyMaterial] = []
    for m in _BIND.finditer(text):
        body = m.group("body")
        alg = _BIND_ALG.search(body)
        sec = _BIND_SECRET.search(body)
        if not alg or not sec:
            raise KeyFormatError(f"key {m.group('name')!r}: needs both 'algorithm' and 'secret'")
        keys.append(make(m.group("name"), alg.group(1), sec.group(1)))
    if keys:
        return keys
    # Knot (id:) and NSD (name:) YAML-ish entries.
    current: dict[str, str] = {}

    def flush() -> None:
        if not current:
            return
        missing = {"name", "algorithm", "secret"} - set(current)
        if missing:
            raise KeyFormatError(f"key entry is missing {', '.join(sorted(missing))}")
        keys.append(make(current["name"], current["algorithm"], current["secret"]))
        current.clear()

    for line in text.splitlines():
        m = _YAML_ITEM.match(line)
        if not m:
            continue
        field = m.group(2).lower()
        field = "name" if field == "id" else field
        value = m.group(3).strip().strip('"')
        if field == "name" and current:
            flush()
        current[field] = value
    flush()
    if keys:
        return keys
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _COLON.match(line)
        if not m:
            raise KeyFormatError("unrecognised key text: expected a BIND key block, a Knot or NSD "
                                 "key entry, or alg:name:secret")
        keys.append(make(m.group(2), m.group(1) or DEFAULT_ALGORITHM, m.group(3)))
    if not keys:
        raise KeyFormatError("no keys found in the text")
    return keys


def export(key: KeyMaterial, fmt: str) -> str:
    """The key as the named tool prints or expects it."""
    bare = key.name.rstrip(".")
    if fmt == "bind":
        return f'key "{bare}" {{\n\talgorithm {key.algorithm};\n\tsecret "{key.secret}";\n}};\n'
    if fmt == "knot":
        return (
            f"# {key.algorithm}:{bare}:{key.secret}\nkey:\n  - id: {bare}\n"
            f"    algorithm: {key.algorithm}\n    secret: {key.secret}\n"
        )
    if fmt == "nsd":
        return f'key:\n\tname: "{bare}"\n\talgorithm: {key.algorithm}\n\tsecret: "{key.secret}"\n'
    if fmt == "pdns":
        return f"pdnsutil import-tsig-key {bare} {key.algorithm} {key.secret}\n"
    if fmt == "dig":
        return f"{key.algorithm}:{bare}:{key.secret}\n"
    raise KeyFormatError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
