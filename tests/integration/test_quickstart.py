"""The quick start (zonekeeper/quickstart.py): a ``zonekeeper serve`` started again with the
same command line, environment, working directory and config file answers from the view of
its settings the last such start kept, before click and pydantic are imported; any change
to those inputs means the usual start, and a kept view that the settings contradict is
dropped with a warning, the server serving by its real settings.

Real server processes on a real SQLite file; the kept files are the test's own
(``XDG_CACHE_HOME`` in the test's directory, set by ``ZkServer``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dns.edns
import dns.message
import dns.query

from tests.conftest import TOKEN, ZkServer

DEMO = "example.test."


def _kept(zk: ZkServer) -> list[Path]:
    return sorted((zk.workdir / "cache" / "zonekeeper" / "serve").glob("*.json"))


def _nsid(zk: ZkServer) -> bytes:
    q = dns.message.make_query(DEMO, "SOA", use_edns=0, options=[dns.edns.NSIDOption(b"")])
    r = dns.query.udp(q, zk.addr, port=zk.dns_port, timeout=5)
    (opt,) = [o for o in r.options if o.otype == dns.edns.NSID]
    return opt.nsid  # type: ignore[attr-defined,no-any-return]


def test_a_start_again_answers_before_its_settings_are_read(tmp_path: Path) -> None:
    zk = ZkServer(tmp_path).start()
    try:
        assert not [e for e in zk.events("dns.answering") if e["quick"]]  # a new database
        zk.stop()
        (kept,) = _kept(zk)
        assert kept.stat().st_mode & 0o777 == 0o600 and kept.parent.stat().st_mode & 0o777 == 0o700
        text = kept.read_text()
        assert TOKEN not in text  # the bootstrap token is in the environment: only hashed
        view = json.loads(text)["view"]
        assert view["database"]["url"] == zk.database
        assert view["dns"]["listen"][0] == f"127.0.0.1:{zk.dns_port}"

        zk.start()
        answering = zk.events("dns.answering")[-1]
        assert answering["quick"] is True, answering
        assert zk.serial(DEMO) > 0
        with zk.client() as api:
            assert api.get(f"/zones/{DEMO}").status_code == 200
        assert not zk.events("start.quick_start_discarded")
        zk.stop()

        # What the quick start does before the command line is parsed, in a process of its
        # own with the server's inputs: answers, with no click, pydantic or SQLAlchemy;
        # and its first log line (once the C loop answers) is the first to need structlog
        # and asyncio: nothing before imported them.
        code = (
            "import sys\n"
            "from zonekeeper import logs, quickstart\n"
            "first, ready = [], logs.ready\n"
            "def noted():\n"
            "    first.append(sorted(m for m in ('asyncio', 'structlog') if m in sys.modules))\n"
            "    return ready()\n"
            "logs.ready = noted\n"
            "quickstart.begin(sys.argv[1:])\n"
            "taken = quickstart.take()\n"
            "assert taken is not None, 'no quick start'\n"
            "import dns.message, dns.query\n"
            f"r = dns.query.udp(dns.message.make_query({DEMO!r}, 'SOA'), '127.0.0.1', "
            f"port={zk.dns_port}, timeout=5)\n"
            "print(len(r.answer), sorted(m for m in ('click', 'pydantic', 'sqlalchemy', "
            "'fastapi') if m in sys.modules), first[:1])\n"
            "from zonekeeper.start import close_early\n"
            "close_early(taken.early)\n"
            "taken.lock.close()\n")
        env = dict(os.environ, ZONEKEEPER_API__BOOTSTRAP_TOKEN=TOKEN,
                   XDG_CACHE_HOME=str(zk.workdir / "cache"))
        env.pop("ZONEKEEPER_CONFIG", None)
        out = subprocess.run([sys.executable, "-c", code, *zk.args()[3:]], cwd=zk.workdir,
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[0] == "1 [] [[]]", out.stdout
    finally:
        zk.stop()


def test_other_inputs_start_the_usual_way(tmp_path: Path) -> None:
    """Another environment, or the config file changed: not the kept view; each start
    serves by its own settings."""
    config = tmp_path / "zonekeeper.toml"
    config.write_text('[dns]\nnsid = "one"\n')
    zk = ZkServer(tmp_path, extra_args=["--config", str(config)]).start()
    try:
        zk.stop()
        zk.start()
        assert zk.events("dns.answering")[-1]["quick"] is True
        assert _nsid(zk) == b"one"
        zk.stop()
        config.write_text('[dns]\nnsid = "two"\n')
        zk.start()
        assert zk.events("dns.answering")[-1]["quick"] is False
        assert _nsid(zk) == b"two"
        zk.stop()
        zk.extra_env = {"ZONEKEEPER_DNS__NSID": "three"}
        zk.start()
        assert zk.events("dns.answering")[-1]["quick"] is False
        assert _nsid(zk) == b"three"
        zk.stop()
        assert len(_kept(zk)) == 2  # one per environment; the file's change replaced its own
        zk.start()
        assert zk.events("dns.answering")[-1]["quick"] is True
        zk.stop()
        for kept in _kept(zk):
            kept.chmod(0o622)  # writable by others: not trusted
        zk.start()
        assert zk.events("dns.answering")[-1]["quick"] is False
        assert _nsid(zk) == b"three"
    finally:
        zk.stop()


def test_a_kept_view_the_settings_contradict_is_dropped(tmp_path: Path) -> None:
    """A kept view that is not what the settings say (here edited by hand; it cannot
    happen unless the settings depend on an input the key leaves out): the early answers
    stop, the server starts the usual way on its real settings, and the view is replaced."""
    zk = ZkServer(tmp_path).start()
    try:
        zk.stop()
        (kept,) = _kept(zk)
        entry = json.loads(kept.read_text())
        entry["view"]["dns"]["nsid"] = "edited"
        kept.write_text(json.dumps(entry))
        zk.start()
        assert zk.events("start.quick_start_discarded")
        assert zk.events("dns.answering")[-1]["quick"] is False
        r = dns.query.udp(dns.message.make_query(DEMO, "SOA", use_edns=0,
                                                 options=[dns.edns.NSIDOption(b"")]),
                          zk.addr, port=zk.dns_port, timeout=5)
        assert r.answer and not r.options  # no NSID set: none answered
        zk.stop()
        assert json.loads(kept.read_text())["view"]["dns"]["nsid"] == ""
    finally:
        zk.stop()
