"""Bounded coverage-guided fuzzing of one target with atheris (libFuzzer).

    python fuzz/run.py --target handler --seconds 600
    python fuzz/run.py --target all --seconds 60     # each target in turn, 60 s each

Targets are in ``fuzz/targets.py``. A run starts from ``fuzz/corpus/<target>/`` (and the
target's seeds), keeps what reaches new coverage in ``fuzz/work/<target>/``, and at the end
merges both into a minimal ``fuzz/corpus/<target>/`` (at most ``--max-corpus`` files, the
smallest first) unless ``--no-merge``. Bounded: ``--seconds`` in all, ``--input-timeout`` per
input (libFuzzer's -timeout: a hang is a crash), ``--rss-mb`` for the process (libFuzzer's
-rss_limit_mb: unbounded memory is a crash). A violation (see targets.Violation) is saved to
``fuzz/crashes/<target>/`` (one per distinct message head) and the run goes on; the report
at the end gives inputs tried, inputs/s, corpus sizes and crashes, and the exit status is 1
when there were any.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NAMES = ["handler", "tcp", "xfrin", "zonefile", "schemas"]


def _signature(exc: BaseException) -> str:
    """What tells two crashes apart: the exception type and the place it was raised (for a
    violation, its first line without the input's hex)."""
    text = str(exc).split("\n", 1)[0]
    head = text.split(" on ", 1)[0].split(" to ", 1)[0][:120]
    tb = exc.__traceback__
    where = ""
    cause = exc.__cause__
    if cause is not None and cause.__traceback__ is not None:
        tb = cause.__traceback__
        head += " " + type(cause).__name__
    while tb is not None:
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return f"{type(exc).__name__}: {head} @ {where}"


def fuzz(args: argparse.Namespace) -> int:
    """In this process: atheris over one target until the time is up."""
    import atheris

    with atheris.instrument_imports(include=args.instrument.split(",")):
        from fuzz import targets
    targets.setup()
    target = targets.TARGETS[args.target]
    work = HERE / "work" / args.target
    corpus = HERE / "corpus" / args.target
    crashes = HERE / "crashes" / args.target
    for d in (work, corpus, crashes):
        d.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (work / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)

    started = time.monotonic()
    deadline = started + args.seconds
    stats = {"inputs": 0, "crashes": 0, "signatures": {}}
    report_path = Path(args.report) if args.report else None

    def report() -> None:
        elapsed = time.monotonic() - started
        out = {"target": args.target, "inputs": stats["inputs"], "seconds": round(elapsed, 1),
               "inputs_per_s": round(stats["inputs"] / elapsed) if elapsed else 0,
               "crashes": stats["crashes"], "distinct": stats["signatures"],
               "work_corpus": len(os.listdir(work))}
        text = json.dumps(out, indent=1)
        print(text, flush=True)
        if report_path is not None:
            report_path.write_text(text)

    def one(data: bytes) -> None:
        if time.monotonic() > deadline:
            report()
            os._exit(0)
        stats["inputs"] += 1
        try:
            target.run(data)
        except Exception as exc:  # noqa: BLE001 - every one is recorded, and the run goes on
            sig = _signature(exc)
            stats["crashes"] += 1
            seen = stats["signatures"]
            if sig not in seen:
                seen[sig] = 0
                name = f"crash-{hashlib.sha1(data).hexdigest()}"
                (crashes / name).write_bytes(data)
                (crashes / (name + ".txt")).write_text(f"{sig}\n\n{exc}\n")
                print(f"\n=== new crash {name}: {sig}\n{str(exc)[:2000]}\n", flush=True)
            seen[sig] += 1

    libfuzzer = [sys.argv[0], str(work), str(corpus),
                 f"-max_len={target.max_len}", f"-timeout={args.input_timeout}",
                 f"-rss_limit_mb={args.rss_mb}", f"-max_total_time={args.seconds + 60}",
                 f"-artifact_prefix={crashes}/", "-print_final_stats=1", "-reload=0"]
    atheris.Setup(libfuzzer, one)
    atheris.Fuzz()
    return 0


def merge(args: argparse.Namespace) -> None:
    """Minimise the old corpus and what the run found into fuzz/corpus/<target>/: libFuzzer's
    merge keeps, smallest first, the inputs that add coverage; then at most max_corpus."""
    work = HERE / "work" / args.target
    corpus = HERE / "corpus" / args.target
    fresh = HERE / "work" / f"{args.target}.merged"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    # libFuzzer's merge runs its command again (argv[0]) through the shell: a wrapper that
    # brings this interpreter and target along.
    wrapper = HERE / "work" / f"{args.target}-merge.sh"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} {HERE / 'run.py'} "
                       f"--target {args.target} --instrument {args.instrument} --libfuzzer-child -- \"$@\"\n")
    wrapper.chmod(0o755)
    subprocess.run([str(wrapper), "-merge=1", str(fresh), str(corpus), str(work)],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    files = sorted(fresh.iterdir(), key=lambda p: (p.stat().st_size, p.name))
    if not files:
        print(f"merge of {args.target} produced nothing; corpus left as it was", flush=True)
        return
    # Reproducers of fixed crashes (crash-*) stay whatever their coverage.
    kept = {p.name: p.read_bytes() for p in corpus.iterdir() if p.name.startswith("crash-")}
    shutil.rmtree(corpus)
    corpus.mkdir()
    for name, data in kept.items():
        (corpus / name).write_bytes(data)
    for p in files[: args.max_corpus]:
        if p.read_bytes() not in kept.values():
            shutil.copy(p, corpus / p.name)
    print(f"corpus {args.target}: {min(len(files), args.max_corpus)} files "
          f"({len(files)} after merge)", flush=True)


def merge_child(args: argparse.Namespace) -> int:
    import atheris

    with atheris.instrument_imports(include=args.instrument.split(",")):
        from fuzz import targets
    targets.setup()
    target = targets.TARGETS[args.target]

    def one(data: bytes) -> None:
        try:
            target.run(data)
        except Exception:  # noqa: BLE001 - crashes are the fuzz run's business, not merge's
            pass

    atheris.Setup([str(HERE / "work" / f"{args.target}-merge.sh"),
                   f"-max_len={target.max_len}", *args.rest], one)
    atheris.Fuzz()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--target", required=True, choices=[*NAMES, "all"])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--input-timeout", type=int, default=5, help="seconds per input")
    p.add_argument("--rss-mb", type=int, default=1536)
    p.add_argument("--instrument", default="zonekeeper,dns",
                   help="packages whose coverage guides the fuzzer (comma-separated)")
    p.add_argument("--max-corpus", type=int, default=300)
    p.add_argument("--no-merge", action="store_true")
    p.add_argument("--report", help="write the run's figures (JSON) here")
    p.add_argument("--libfuzzer-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.libfuzzer_child:
        return merge_child(args)
    names = NAMES if args.target == "all" else [args.target]
    if len(names) > 1 or not os.environ.get("ZONEKEEPER_FUZZ_CHILD"):
        # Each target in its own process (atheris ends its process), then the merge.
        status = 0
        for name in names:
            env = dict(os.environ, PYTHONPATH=str(ROOT), ZONEKEEPER_FUZZ_CHILD="1")
            cmd = [sys.executable, str(HERE / "run.py"), "--target", name,
                   "--seconds", str(args.seconds), "--input-timeout", str(args.input_timeout),
                   "--rss-mb", str(args.rss_mb), "--instrument", args.instrument]
            if args.report:
                cmd += ["--report", f"{args.report}.{name}.json" if len(names) > 1 else args.report]
            rc = subprocess.run(cmd, env=env, check=False).returncode
            status = status or rc
            if not args.no_merge:
                args.target = name
                merge(args)
        return status
    return fuzz(args)


if __name__ == "__main__":
    sys.exit(main())
