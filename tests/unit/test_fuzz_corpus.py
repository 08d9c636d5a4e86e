"""The fuzzing corpus replayed (fuzz/corpus/<target>/, kept by ``fuzz/run.py``): every input
that reached new coverage in a fuzz run, and the reproducer of every crash the fuzzing found
(``crash-*``), goes through the same checks as in the run (``fuzz/targets.py``): no escaping
exception, no exception logged as a bug, only the answers the server may give."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import pytest
import structlog

from fuzz import targets
from zonekeeper.server import listeners

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus"


@pytest.fixture(scope="module", autouse=True)
def _recorder() -> Iterator[None]:
    old = structlog.get_config()
    targets.setup()
    yield
    structlog.configure(**old)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_corpus_replays_clean(name: str) -> None:
    files = sorted((CORPUS / name).iterdir())
    assert len(files) >= len(targets.TARGETS[name].seeds()) // 4, f"corpus of {name} is missing"
    run = targets.TARGETS[name].run
    failures = []
    for path in files:
        try:
            run(path.read_bytes())
        except targets.Violation as exc:
            failures.append(f"{path.name}: {str(exc)[:500]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_seeds_replay_clean(name: str) -> None:
    for seed in targets.TARGETS[name].seeds():
        targets.TARGETS[name].run(seed)


def test_a_logged_bug_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness sees a bug that the listener turns into SERVFAIL (and logs)."""
    def broken(*_a: object, **_k: object) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr(targets.world().handler, "answer", broken)
    query = b"\x00" + dns.message.make_query("example.test.", "A").to_wire()
    with pytest.raises(targets.Violation, match="logged dns.handler_error"):
        targets.target_handler(query)
    assert listeners  # the listener's own logger was the one that logged


def test_a_wrong_answer_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    query = dns.message.make_query("example.test.", "A").to_wire()
    monkeypatch.setattr(targets.world().handler, "answer",
                        lambda req, tcp, addr="": req.wire[:2] + b"\x80\x02" + req.wire[4:])  # SERVFAIL
    with pytest.raises(targets.Violation, match="SERVFAIL for a zone that is served"):
        targets.target_handler(b"\x00" + query)
    monkeypatch.setattr(targets.world().handler, "answer", lambda req, tcp, addr="": b"\x00" * 12)
    with pytest.raises(targets.Violation, match="not a response"):
        targets.target_handler(b"\x00" + query)


def test_chunking_that_changes_answers_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = b"".join(len(m).to_bytes(2, "big") + m for m in (
        dns.message.make_query("example.test.", "A").to_wire(),
        dns.message.make_query("www.example.test.", "A").to_wire()))
    targets.target_tcp(b"\x01\x04" + stream)  # in 5-octet pieces: the same answers
    real = listeners.answer_ready

    def first_only(state, data, addr, out):  # type: ignore[no-untyped-def]
        used, transfer = real(state, data, addr, out)
        return (len(data) if used else 0), transfer  # drops what follows the first answers

    monkeypatch.setattr(listeners, "answer_ready", first_only)
    with pytest.raises(targets.Violation):
        targets.target_tcp(b"\x01\x04" + stream)
